"""DDP the way nnU-Net runs it (``-num_gpus 2``: ``run_training`` -> ``mp.spawn(run_ddp)``), two CPU processes.

gloo for nccl and the CPU for cuda:rank are substituted in the spawned processes only (ddp_on_cpu.py); the
rest is nnU-Net's and SSSTrainer's code. Checked: both ranks train on their own half batch and end with
identical weights (gradients all-reduced), only rank 0 writes checkpoints, and ``--c`` resumes both ranks
from rank 0's checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainers.stock import run_stock, stock_env
from tests.trainers.tiny_dataset import write_tiny_dataset

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
HERE = Path(__file__).resolve().parent
TRAINER = "SSSTrainer_tiny"


def run_two_ranks(root: Path, env: dict, out: Path, run: int, *flags: str) -> None:
    out.mkdir(exist_ok=True)
    env = dict(env, SSS_DDP_RUN=str(run), SSS_TINY_EPOCHS=str(run), nnUNet_def_n_proc="1",
               PYTHONPATH=f"{HERE}{':' + env['PYTHONPATH'] if env.get('PYTHONPATH') else ''}", OMP_NUM_THREADS="1")
    code = "import sys, ddp_on_cpu; ddp_on_cpu.main(sys.argv[1:])"
    res = subprocess.run([sys.executable, "-c", code, "977", TRAINER, str(out), *flags], env=env,
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]


def _load(out: Path, name: str):
    path = out / name
    assert path.exists(), f"{name} was not written: the hook did not run in that process"
    return torch.load(path) if name.endswith(".pt") else json.loads(path.read_text())


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    env = stock_env(root)
    write_tiny_dataset(root / "raw")
    res = run_stock(["nnUNetv2_plan_and_preprocess", "-d", "977", "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env)
    assert res.returncode == 0, res.stderr[-3000:]
    out = root / "records"
    run_two_ranks(root, env, out, 1)
    first = torch.load(root / "results" / "Dataset977_Tiny" / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
                       / "checkpoint_final.pth", weights_only=False)
    run_two_ranks(root, env, out, 2, "--c")
    return root, out, first


def test_both_ranks_step_on_their_own_data_and_end_with_identical_weights(ddp_runs):
    _, out, _ = ddp_runs
    steps = [_load(out, f"steps_rank{r}_run1.json") for r in (0, 1)]
    assert all(len(s) == 2 and s[0]["world"] == 2 for s in steps)  # SSSTrainer_tiny: 2 iterations per epoch
    assert all(s[0]["batch"] == 1 for s in steps)  # nnU-Net splits the plans' batch size 2 over the ranks
    assert steps[0][0]["data"] != steps[1][0]["data"], "both ranks got the same batch: the check below proves nothing"
    start = [_load(out, f"weights_start_rank{r}_run1.pt") for r in (0, 1)]
    end = [_load(out, f"weights_end_rank{r}_run1.pt") for r in (0, 1)]
    assert all(torch.equal(start[0][k], start[1][k]) for k in start[0])  # DDP broadcasts rank 0's initial weights
    changed = [k for k in end[0] if end[0][k].is_floating_point() and not torch.equal(end[0][k], start[0][k])]
    assert len(changed) > 0.5 * len(end[0])
    differing = [k for k in end[0] if not torch.equal(end[0][k], end[1][k])]
    assert not differing, f"ranks diverged after all-reduced steps: {differing[:5]}"


def test_only_rank_0_writes_checkpoints(ddp_runs):
    root, out, first = ddp_runs
    saved = _load(out, "saves_rank0_run1.json")
    assert any(Path(f).name.startswith(".checkpoint_final.pth") for f in saved)  # SSSTrainer's temp file, renamed
    assert not (out / "saves_rank1_run1.json").exists() and not (out / "saves_rank1_run2.json").exists()
    folder = root / "results" / "Dataset977_Tiny" / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
    assert not list(folder.glob(".*.partial")), "a rank left a temporary checkpoint behind"
    weights = first["network_weights"]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in weights)
    end = _load(out, "weights_end_rank0_run1.pt")
    assert all(torch.equal(weights[k], end[k]) for k in end)


def test_c_resumes_both_ranks_from_the_checkpoint(ddp_runs):
    root, out, first = ddp_runs
    for r in (0, 1):
        start = _load(out, f"weights_start_rank{r}_run2.pt")
        assert all(torch.equal(start[k], first["network_weights"][k]) for k in start), f"rank {r} did not resume"
        assert len(_load(out, f"steps_rank{r}_run2.json")) == 2  # one more epoch, not two
    final = torch.load(root / "results" / "Dataset977_Tiny" / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"
                       / "checkpoint_final.pth", weights_only=False)
    assert first["current_epoch"] == 1 and final["current_epoch"] == 2
    end = [_load(out, f"weights_end_rank{r}_run2.pt") for r in (0, 1)]
    assert all(torch.equal(end[0][k], end[1][k]) for k in end[0])
