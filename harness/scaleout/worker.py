"""``python -m harness.scaleout.worker``: one local worker process of a ``workers`` / ``local-gpus`` run.

It reads its task (JSON, one line) on stdin, prepares the run and loads the method, answers ``{"ready": ...}``,
then predicts each unit name it is sent (one per line) and answers one JSON outcome line per unit. End of input
ends it. Whatever the method prints goes to stderr (the worker's log), so stdout carries only the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import asdict


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    from harness.scaleout.work import WorkerSession, WorkerTask

    try:
        session = WorkerSession(WorkerTask.from_json(json.loads(sys.stdin.readline())))
    except Exception as err:
        traceback.print_exc()
        send({"fatal": f"{type(err).__name__}: {err}"})
        return 1
    send({"ready": os.getpid()})
    for line in sys.stdin:
        name = line.rstrip("\n")
        if name:
            for outcome in session.predict([name]):
                send(asdict(outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
