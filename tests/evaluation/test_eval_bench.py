"""benchmarks/bench_metrics.py: its generator and both metric paths work and agree (timing is not tested)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sss_nnunet.datasets.specs import SYNAPSE8
from sss_nnunet.evaluation.evaluate import evaluate_pairs
from sss_nnunet.evaluation.protocols import PAPER, STRICT
from sss_nnunet.evaluation.tasks import task_from_spec

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_metrics.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
