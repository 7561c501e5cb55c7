"""``python -m sss_nnunet.gpucheck --quick`` on the CPU (as CI runs it): exits 0, writes both
reports, runs the CPU parts and names every GPU part it skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sss_nnunet.gpucheck import bench


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_quick_run_on_the_cpu_writes_reports_and_lists_what_it_skipped(tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ)
    env.pop("SSS_BI_WKV_BACKEND", None)
    res = subprocess.run([sys.executable, "-m", "sss_nnunet.gpucheck", "--quick", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=1800,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    assert report["meta"]["cuda"] is False and report["errors"] == []
    # (a) the torch backend ran every quick case against the float64 reference
    torch_num = report["a_numerics"]["torch"]
    assert torch_num["status"] == "ok" and len(torch_num["results"]) >= 5
    assert all(r["deterministic"] for r in torch_num["results"])
    # (b) the network's shapes were recorded (not hard-coded): global and local scans
    shapes = report["b_bi_wkv_bench"]["network_shapes"]
    assert len(shapes) >= 3 and any(s["T"] >= 2048 for s in shapes) and any(s["T"] <= 64 for s in shapes)
    # (c) the CPU step ran and saw the WKV op
    step = report["c_train_step"]["eager_cpu_float32"]
    assert step["status"] == "ok" and step["step_s"] > 0 and 0 < step["wkv_share"] < 1
    skipped = "\n".join(report["skipped"])
    for part in ("a_numerics/triton", "b_bi_wkv_bench", "c_train_step/eager", "c_train_step/compiled", "d_ddp"):
        assert f"{part}: skipped: no CUDA" in skipped, skipped
    longest = max(shapes, key=lambda s: s["T"])
    assert "skipped: no CUDA" in md and "## (a) Bi-WKV numerics" in md
    assert f"| {longest['B']} | {longest['T']} | {longest['C']} |" in md


def test_network_shapes_follow_the_patch():
    """Recorded from a forward pass on the meta device: a smaller patch gives shorter scans."""
    big = bench.network_shapes(torch.device("cpu"))
    small = bench.network_shapes(torch.device("cpu"), patch=(32, 64, 64), batch=1)
    assert max(s["T"] * s["B"] for s in small) < max(s["T"] * s["B"] for s in big)
    assert all(s["B"] >= 1 and s["C"] >= 1 and s["calls"] >= 1 for s in big)


def test_floor_bytes_counts_every_tensor_once():
    fb = bench.floor_bytes(2, 100, 8, torch.float16)
    n = 2 * 100 * 8
    assert fb["fwd"] == n * (3 * 2 + 4)  # k, v, y in fp16 + logD fp32
    assert fb["fwd_bwd"] == fb["fwd"] + n * (3 * 2 + 4 + 4 + 2 * 2)  # k, v, dy, y_hi, logD, dk, dv
