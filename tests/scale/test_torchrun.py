"""``python -m sss_nnunet.train`` under torchrun on the CPU (gloo): two processes on one launcher,
two launchers as two nodes (c10d rendezvous), preemption by SIGUSR1 and ``--c`` on another number of
nodes. Every run trains ScaleTestTrainer (nnU-Net's nnUNetTrainer on fixed batches, tests/scale/ext)
for a few iterations; a DDP run must match the single-process run with the same global batch."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from sss_nnunet.scale.preempt import EXIT_PREEMPTED
from tests.scale.runs import (
    FOLD,
    TRAIN,
    env_for,
    files,
    finish,
    free_port,
    max_difference,
    run,
    start,
    torchrun,
    two_launchers,
    wait_for,
    weights,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
STANDALONE = ("--standalone", "--nnodes", "1")


@pytest.fixture(scope="module")
def reference(planned, tmp_path_factory) -> Path:
    """One process, global batch 2, 2 epochs x 2 iterations."""
    base = tmp_path_factory.mktemp("reference")
    rc, out = run([sys.executable, *TRAIN], env_for(planned, base / "results", base / "dump"), base / "log.txt")
    assert rc == 0, out[-4000:]
    return base


def training_logs(results: Path) -> list[str]:
    return [p.read_text() for p in sorted((results / FOLD).glob("training_log_*.txt"))]


def assert_like_reference(reference: Path, dump: Path, results: Path) -> None:
    start_weights, ref = weights(reference / "dump" / "rank0.start.pt"), weights(reference / "dump" / "rank0.pt")
    rank0, rank1 = weights(dump / "rank0.pt"), weights(dump / "rank1.pt")
    assert max_difference(rank0, rank1) == 0.0, "the two ranks ended with different weights"
    moved, off = max_difference(ref, start_weights), max_difference(rank0, ref)
    assert moved > 1e-3, moved
    assert off < 1e-4 and off < 0.01 * moved, f"DDP result differs from one process by {off} (training moved {moved})"
    final = torch.load(results / FOLD / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert max_difference(final["network_weights"], rank0) == 0.0
    assert files(results) == files(reference / "results")  # rank 0 wrote what a single process writes
    assert len(training_logs(results)) == 1


def test_two_processes_on_one_launcher_match_one_process(planned, reference, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = env_for(planned, tmp_path / "results", tmp_path / "dump", TMPDIR=str(scratch))
    rc, out = run([*torchrun(2, *STANDALONE), *TRAIN], env, tmp_path / "log.txt")
    assert rc == 0, out[-4000:]
    assert "worker 0 batch_size 1" in out and "worker 1 batch_size 1" in out  # nnU-Net's split of batch 2
    assert_like_reference(reference, tmp_path / "dump", tmp_path / "results")
    assert not list(scratch.glob("sss-nnunet-rank*")), "rank 1's private results folder was left behind"


def two_nodes(planned: Path, tmp: Path, results: Path, extra: list[str] = (), **env: str) -> list[tuple[int, str]]:
    """Both launchers of a two-node run; the second node's nnUNet_results is its own empty folder."""
    port = free_port()
    procs = [start([*two_launchers(port, rank), *TRAIN, *extra],
                   env_for(planned, results if rank == 0 else tmp / "node1_results", tmp / "dump", **env),
                   tmp / f"node{rank}.txt") for rank in (0, 1)]
    return [finish(p, tmp / f"node{rank}.txt") for rank, p in enumerate(procs)]


def test_two_launchers_as_two_nodes_match_one_process(planned, reference, tmp_path):
    (rc0, out0), (rc1, out1) = two_nodes(planned, tmp_path, tmp_path / "results")
    assert rc0 == rc1 == 0, out0[-3000:] + out1[-3000:]
    assert_like_reference(reference, tmp_path / "dump", tmp_path / "results")
    assert files(tmp_path / "node1_results") == [], "the second node wrote into its nnUNet_results"


def preempt_when(proc, results: Path, pid_file: Path, epoch_line: str = "Epoch 1") -> None:
    """SIGUSR1 to the process in ``pid_file`` once rank 0's training log reached ``epoch_line``."""
    wait_for(lambda: pid_file.is_file() and any(epoch_line in t for t in training_logs(results)) or
             proc.poll() is not None, what=epoch_line)
    assert proc.poll() is None, "the training ended before the signal"
    os.kill(int(pid_file.read_text()), signal.SIGUSR1)


def latest(results: Path) -> dict:
    return torch.load(results / FOLD / "checkpoint_latest.pth", map_location="cpu", weights_only=False)


def test_sigusr1_checkpoints_and_two_nodes_continue_with_c(planned, tmp_path):
    results, dump = tmp_path / "results", tmp_path / "dump"
    env = env_for(planned, results, dump, SCALE_TEST_EPOCHS="3", SCALE_TEST_STEP_SECONDS="0.5")
    proc = start([sys.executable, *TRAIN], env, tmp_path / "first.txt")
    preempt_when(proc, results, dump / "rank0.pid")
    rc, out = finish(proc, tmp_path / "first.txt")
    assert rc == EXIT_PREEMPTED, out[-3000:]
    assert "preempted (SIGUSR1) in epoch 1" in training_logs(results)[0]
    checkpoint = latest(results)
    assert checkpoint["current_epoch"] == 1  # epoch 1 restarts
    assert [len(checkpoint["logging"][k]) for k in ("train_losses", "val_losses", "lrs")] == [1, 1, 1]
    assert not (results / FOLD / "checkpoint_final.pth").exists()

    (rc0, out0), (rc1, out1) = two_nodes(planned, tmp_path, results, ["--c"], SCALE_TEST_EPOCHS="3")
    assert rc0 == rc1 == 0, out0[-3000:] + out1[-3000:]
    resumed = training_logs(results)[-1]
    assert "continuing from checkpoint_latest.pth on 2 ranks" in resumed
    assert "Epoch 1" in resumed and "Epoch 2" in resumed and "Epoch 0" not in resumed
    final = torch.load(results / FOLD / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3 and len(final["logging"]["train_losses"]) == 3
    assert max_difference(weights(dump / "rank0.pt"), weights(dump / "rank1.pt")) == 0.0
    assert files(tmp_path / "node1_results") == []


def test_sigusr1_on_one_rank_stops_all_and_one_process_continues(planned, tmp_path):
    results, dump = tmp_path / "results", tmp_path / "dump"
    env = env_for(planned, results, dump, SCALE_TEST_EPOCHS="3", SCALE_TEST_STEP_SECONDS="0.5")
    proc = start([*torchrun(2, *STANDALONE), *TRAIN], env, tmp_path / "ddp.txt")
    preempt_when(proc, results, dump / "rank1.pid")  # rank 1 only: the ranks agree after every iteration
    rc, out = finish(proc, tmp_path / "ddp.txt")
    assert rc != 0, "torchrun reports the workers' preemption exit as a failure"
    codes = [line.split(":")[1].split()[0] for line in out.splitlines() if line.strip().startswith("exitcode")]
    assert codes and set(codes) == {str(EXIT_PREEMPTED)}, out[-3000:]
    assert "preempted (signal on another rank) in epoch 1" in training_logs(results)[0]
    assert latest(results)["current_epoch"] == 1

    rc, out = run([sys.executable, *TRAIN, "--c"], {**env, "SCALE_TEST_STEP_SECONDS": "0"}, tmp_path / "one.txt")
    assert rc == 0, out[-3000:]
    final = torch.load(results / FOLD / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert final["current_epoch"] == 3
