"""benchmarks/bench_network.py: ``RWKV-SSS:<ablation>`` builds the ablation trainer's network, and
``--counts-only`` prints counts and ratios without timing anything. Timing is not tested."""

from __future__ import annotations

import pytest

from sss_nnunet.trainers import SSSTrainer_globalOnly, SSSTrainer_scanWeightsStatic
from tests.common.bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_network")


def test_ablation_names_map_to_their_trainers_overrides(bench):
    assert bench.ablation_overrides("globalOnly") == SSSTrainer_globalOnly.network_overrides
    assert bench.ablation_overrides("scanWeightsStatic") == SSSTrainer_scanWeightsStatic.network_overrides
    with pytest.raises(ValueError, match="SSSTrainer_nope.*bothMixes"):
        bench.ablation_overrides("nope")


def test_ablation_model_differs_from_the_default(bench):
    default, glob = bench.build("RWKV-SSS", 3), bench.build("RWKV-SSS:globalOnly", 3)
    n_default = sum(p.numel() for p in default.parameters())
    assert sum(p.numel() for p in glob.parameters()) < n_default  # one spatial mix less per block
    assert sum(p.numel() for p in bench.build("RWKV-SSS:scanWeightsStatic", 3).parameters()) < n_default  # no gate


def test_counts_only_prints_ablation_ratios_without_timings(bench, monkeypatch, capsys):
    monkeypatch.setattr(bench, "FEATURES", [4, 8, 16, 16, 16, 16])

    def no_timing(*args, **kwargs):
        raise AssertionError("--counts-only must not time or profile anything")

    monkeypatch.setattr(bench, "train_step", no_timing)
    monkeypatch.setattr(bench, "peak_memory_mb", no_timing)
    code = bench.main(["--shape", "32", "64", "64", "--classes", "3", "--counts-only",
                       "--models", "RWKV-SSS", "RWKV-SSS:globalOnly", "PlainConvUNet"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("RWKV-SSS", "Plain"))
            and "/" not in line}
    assert set(rows) == {"RWKV-SSS", "RWKV-SSS:globalOnly", "PlainConvUNet"}
    assert rows["RWKV-SSS"][6:9] == ["-", "-", "-"]  # fwd, fwd+bwd, CPU peak: not measured
    ratio = next(line for line in out.splitlines() if line.startswith("RWKV-SSS:globalOnly / RWKV-SSS:"))
    assert "params_m x0." in ratio and "fwd_s" not in ratio
    assert "forward <= 1.0x" not in out
