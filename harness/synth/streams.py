"""Where identities come from: evaluation subjects and training identities are drawn from disjoint streams.

Evaluation subjects (the demo's, demo-wild's and the demo sweep's) come from seed sequences with entropy
``[seed, index]`` (the demo and demo-wild, unchanged since they were first shipped) or ``[SWEEP_TAG, index]``;
training identities from ``[CORPUS_TAG, seed, index, attempt]``. Disjoint entropy gives unrelated streams, and the
corpus does not rely on that alone: a drawn training identity closer than ``MIN_IDENTITY_DISTANCE`` (Euclidean, in
the head model's identity coefficients) to any evaluation subject is redrawn with the next ``attempt``, so no
training identity can equal or come near an evaluation subject; the corpus manifest records each identity's
nearest distance to every evaluation subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.heads.model import HeadModel
from harness.synth.heads import Identity, make_identity

CORPUS_TAG = 0x434F5250  # "CORP"
SWEEP_TAG = 0x53574550  # "SWEP"
MIN_IDENTITY_DISTANCE = 0.75
MAX_ATTEMPTS = 64

DEMO_SUBJECTS = ("901", "902", "903")
DEMO_WILD_INDICES = (0, 1, 2, 3)
SWEEP_SUBJECTS = tuple(str(s) for s in range(911, 923))  # 12 held-out subjects of the demo few-shot sweep


@dataclass(frozen=True)
class EvaluationSubject:
    dataset: str
    subject: str
    identity: Identity


def demo_identity(model: HeadModel, seed: int, index: int) -> Identity:
    """The demo's and demo-wild's subjects (entropy ``[seed, index]``)."""
    return make_identity(np.random.default_rng([seed, index]), model)


def sweep_identity(model: HeadModel, index: int) -> Identity:
    return make_identity(np.random.default_rng([SWEEP_TAG, index]), model)


_EVALUATION: dict[str, tuple[EvaluationSubject, ...]] = {}


def _evaluation_subjects(model: HeadModel) -> tuple[EvaluationSubject, ...]:
    subjects = [EvaluationSubject("demo", s, demo_identity(model, 0, i)) for i, s in enumerate(DEMO_SUBJECTS)]
    subjects += [EvaluationSubject("demo-wild", f"wild-{901 + i}", demo_identity(model, 0, i))
                 for i in DEMO_WILD_INDICES]
    subjects += [EvaluationSubject("demo-sweep", s, sweep_identity(model, i)) for i, s in enumerate(SWEEP_SUBJECTS)]
    return tuple(subjects)


def evaluation_subjects(model: HeadModel) -> tuple[EvaluationSubject, ...]:
    """Every subject the harness evaluates on that is made from the head model (default seed 0)."""
    if model.name not in _EVALUATION:
        _EVALUATION[model.name] = _evaluation_subjects(model)
    return _EVALUATION[model.name]


def identity_distances(identity: Identity, model: HeadModel) -> dict[str, float]:
    """Distance in identity-coefficient space to each evaluation subject, keyed ``dataset/subject``."""
    return {f"{e.dataset}/{e.subject}": float(np.linalg.norm(identity.shape - e.identity.shape))
            for e in evaluation_subjects(model)}


def training_identity(model: HeadModel, seed: int, index: int) -> tuple[Identity, int]:
    """Training identity ``index`` of corpus ``seed`` and the attempt that was kept (0 unless redrawn)."""
    for attempt in range(MAX_ATTEMPTS):
        identity = make_identity(np.random.default_rng([CORPUS_TAG, seed, index, attempt]), model)
        if min(identity_distances(identity, model).values()) >= MIN_IDENTITY_DISTANCE:
            return identity, attempt
    raise RuntimeError(f"no training identity {index} of seed {seed} kept {MIN_IDENTITY_DISTANCE} away from the "
                       f"evaluation subjects in {MAX_ATTEMPTS} draws")
