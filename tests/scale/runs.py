"""Helpers for tests/scale: environments and commands for ``python -m sss_nnunet.train`` runs of the
test trainer (tests/scale/ext) on the planned tiny dataset, alone or under torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

EXT = Path(__file__).parent / "ext"
REPO = Path(__file__).parents[2]
TRAINER = "ScaleTestTrainer"
TRAIN = ["-m", "sss_nnunet.train", "977", "3d_fullres", "0", "-tr", TRAINER, "-device", "cpu"]
FOLD = Path("Dataset977_Tiny") / f"{TRAINER}__nnUNetPlans__3d_fullres" / "fold_0"


def env_for(root: Path, results: Path, dump: Path, **extra: str) -> dict:
    """The caller's environment with the tiny dataset, ``results`` as nnUNet_results, the test trainer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "SCALE_TEST_"))}
    results.mkdir(parents=True, exist_ok=True)
    dump.mkdir(parents=True, exist_ok=True)
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(results), nnUNet_extTrainer=str(EXT), nnUNet_n_proc_DA="0",
               nnUNet_def_n_proc="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", SCALE_TEST_DUMP=str(dump),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int, *rdzv: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *rdzv]


def two_launchers(port: int, rank: int) -> list[str]:
    """One of two torchrun launchers (``--nnodes 2``, one process each) meeting at a c10d rendezvous."""
    return torchrun(1, "--nnodes", "2", "--node-rank", str(rank), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "scale-test",
                    "--rdzv-conf", f"is_host={int(rank == 0)}")


def start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise
    return rc, log.read_text()


def run(argv: list[str], env: dict, log: Path, timeout: float = 900) -> tuple[int, str]:
    return finish(start(argv, env, log), log, timeout)


def wait_for(condition, timeout: float = 600, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.2)


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def files(folder: Path) -> list[str]:
    """Relative paths of the files below ``folder``, training logs and timestamps aside."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith("training_log_"))
