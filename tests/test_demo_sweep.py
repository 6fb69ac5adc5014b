"""The demo few-shot sweep: k = 1, 3, 8 inputs, novel-expression targets on all 16 cameras, 12 held-out subjects."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.data.demo import SERIALS, generate
from harness.data.demo_sweep import INPUT_FRAMES, SWEEP, DemoSweep
from harness.data.protocol import load_protocol
from harness.heads.template import head_template
from harness.synth.streams import evaluation_subjects

PROTOCOL = Path(__file__).parents[1] / "datasets" / "demo" / "demo-sweep.yaml"


def test_sweep_protocol_units() -> None:
    units = load_protocol(PROTOCOL).units()
    subjects = {u.subject for u in units}
    assert len(subjects) >= 10 and len(units) == 3 * len(subjects)
    assert sorted({len(u.sources) for u in units}) == [1, 3, 8]
    for unit in units:
        assert {t.camera for t in unit.targets} == set(SERIALS)  # all 16 cameras, yaw -75..75
        assert {t.frame for t in unit.targets}.isdisjoint({s.frame for s in unit.sources})
        assert all(s.frame < INPUT_FRAMES <= t.frame for s in unit.sources for t in unit.targets)
    # the same targets for every k: paired across k
    by_subject = {}
    for unit in units:
        by_subject.setdefault(unit.subject, set()).add(unit.targets)
    assert all(len(targets) == 1 for targets in by_subject.values())


def test_sweep_subjects_are_the_held_out_stream_and_expressions_are_novel() -> None:
    model = head_template()
    sweep = [e for e in evaluation_subjects(model) if e.dataset == "demo-sweep"]
    assert [e.subject for e in sweep] == list(SWEEP.subjects)
    identity = SWEEP.identity(0, 0)
    assert np.array_equal(identity.shape, sweep[0].identity.shape)
    inputs = np.stack([SWEEP.params(model, identity, f).expression for f in range(INPUT_FRAMES)])
    for frame in range(INPUT_FRAMES, SWEEP.num_frames):
        novel = SWEEP.params(model, identity, frame).expression
        assert np.min(np.linalg.norm(inputs - novel, axis=1)) > 0.5
        assert np.any(np.abs(novel[np.all(inputs == 0, axis=0)]) > 0.1)  # components no input frame moves


def test_sweep_generates_and_reads_back_with_tracking(tmp_path: Path) -> None:
    small = replace(SWEEP, subjects=SWEEP.subjects[:1], num_gaussians=1500)
    generate(tmp_path / "sweep", spec=small)
    reader = type("SmallSweep", (DemoSweep,), {"spec": small}).open(tmp_path / "sweep")
    from harness.api.types import ViewRef

    view = reader.load_view(ViewRef("911", "EXP-1-head", 9, "222200037"))
    assert view.image.shape == (280, 200, 3) and view.alpha.max() > 0.9
    tracking = reader.tracking("911", "EXP-1-head", 9)
    assert tracking["model"] == head_template().name and len(tracking["expression"]) == head_template().num_expression
