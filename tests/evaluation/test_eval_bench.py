"""benchmarks/bench_metrics.py: its generator and both metric paths work and agree (timing is not tested)."""

from __future__ import annotations

import numpy as np
import pytest

from sss_nnunet.datasets.specs import SYNAPSE8
from sss_nnunet.evaluation.evaluate import evaluate_pairs
from sss_nnunet.evaluation.protocols import PAPER, STRICT
from sss_nnunet.evaluation.tasks import task_from_spec
from tests.common.bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_metrics")


def test_generator(bench):
    gt, pred = bench.make_case(0, shape=(30, 64, 64))
    assert gt.shape == pred.shape == (30, 64, 64) and gt.dtype == np.uint8
    assert set(np.unique(gt)) <= set(range(9)) and len(np.unique(gt)) >= 6
    again, _ = bench.make_case(0, shape=(30, 64, 64))
    assert np.array_equal(gt, again)
    assert not np.array_equal(gt, pred)


@pytest.mark.parametrize("protocol", [PAPER, STRICT], ids=lambda p: p.name)
def test_ours_equals_medpy_on_bench_cases(bench, tmp_path, protocol):
    pairs = bench.write_cases(tmp_path, 2, (24, 56, 48))
    ours = evaluate_pairs(pairs, task_from_spec(SYNAPSE8), protocol, workers=1, progress=False)
    ref = [s for case in bench.run_medpy(pairs, protocol, workers=1) for s in case]
    assert len(ours) == len(ref) == 2 * 8
    for row, (d, h) in zip(ours, ref):
        assert row.dice == pytest.approx(d, abs=1e-6) and row.hd95 == pytest.approx(h, abs=1e-6)


@pytest.mark.parametrize("protocol", [PAPER, STRICT], ids=lambda p: p.name)
def test_medpy_reference_has_its_own_empty_mask_rule(bench, tmp_path, protocol, monkeypatch):
    """Missed, spurious and absent organs: the reference does not call Protocol.score, and ours agrees with it."""
    import SimpleITK as sitk

    from sss_nnunet.evaluation.cases import pair_cases

    gt, pred = np.zeros((12, 20, 16), np.uint8), np.zeros((12, 20, 16), np.uint8)
    gt[2:6, 3:9, 4:10] = 1
    pred[3:6, 3:10, 4:9] = 1  # found
    gt[7:10, 10:15, 2:6] = 2  # missed
    pred[1:3, 14:18, 10:14] = 3  # spurious; 4..8 absent from both
    for sub, array in (("gt", gt), ("pred", pred)):
        (tmp_path / sub).mkdir()
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 2.5))
        sitk.WriteImage(image, str(tmp_path / sub / "case_000.nii.gz"))
    pairs = pair_cases(tmp_path / "pred", tmp_path / "gt", ".nii.gz")
    ours = evaluate_pairs(pairs, task_from_spec(SYNAPSE8), protocol, workers=1, progress=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("the medpy reference used the code under test (Protocol.score)")

    monkeypatch.setattr(type(protocol), "score", forbidden)
    ref = bench.run_medpy(pairs, protocol, workers=1)[0]
    diagonal = float(np.sqrt((12 * 2.5) ** 2 + (20 * 0.8) ** 2 + (16 * 0.8) ** 2))
    penalty = diagonal if protocol is STRICT else 0.0
    expected = [(0.0, penalty), (0.0, penalty)] + [(1.0, 0.0)] * 5
    assert [x for pair in ref[1:] for x in pair] == pytest.approx([x for pair in expected for x in pair], rel=1e-6)
    for row, (d, h) in zip(ours, ref):
        assert row.dice == pytest.approx(d, abs=1e-6) and row.hd95 == pytest.approx(h, abs=1e-6)
