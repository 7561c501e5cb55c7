"""Quick checks of the pieces of sss_nnunet.scale that need no training: the mixed-in class, the
signal flag, the restart checkpoint and the torchrun detection."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from sss_nnunet.scale import preempt
from sss_nnunet.scale.distributed import under_torchrun
from sss_nnunet.scale.trainer import ScaleMixin, scaled


class FakeLogger:
    def __init__(self, epochs: int):
        self.logging = {"train_losses": list(range(epochs)), "lrs": list(range(epochs)), "note": "kept"}

    def get_checkpoint(self):
        return self.logging


class FakeTrainer:
    """What ScaleMixin uses of an nnU-Net trainer; save_checkpoint stores current_epoch + 1 as nnU-Net does."""

    is_ddp = False
    dataloader_train = dataloader_val = None

    def __init__(self, folder, epoch: int, logged: int):
        self.output_folder, self.current_epoch, self.logger = str(folder), epoch, FakeLogger(logged)
        self.lines = []

    def save_checkpoint(self, filename):
        torch.save({"current_epoch": self.current_epoch + 1, "logging": self.logger.get_checkpoint()}, filename)

    def print_to_log_file(self, *args, **kwargs):
        self.lines.append(" ".join(map(str, args)))

    def train_step(self, batch):
        return {"loss": batch}


Scaled = scaled(FakeTrainer)


@pytest.fixture
def flag():
    old = {s: signal.getsignal(s) for s in preempt.SIGNALS}
    preempt.reset()
    preempt.install()
    yield
    preempt.reset()
    for s, handler in old.items():
        signal.signal(s, handler)


def test_scaled_keeps_the_trainer_name_and_is_idempotent():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    cls = scaled(nnUNetTrainer)
    assert cls.__name__ == "nnUNetTrainer" and cls.__mro__[1:3] == (ScaleMixin, nnUNetTrainer)
    assert scaled(cls) is cls


@pytest.mark.parametrize("sig", preempt.SIGNALS)
def test_signals_only_set_the_flag(flag, sig):
    assert not preempt.requested()
    os.kill(os.getpid(), sig)  # the process survives
    assert preempt.requested() and preempt.signal_name() == signal.Signals(sig).name


def test_steps_run_on_until_a_signal(flag, tmp_path):
    trainer = Scaled(tmp_path, epoch=3, logged=4)
    assert trainer.train_step(1.5) == {"loss": 1.5}
    assert not list(tmp_path.iterdir())


def test_a_signal_ends_the_step_with_a_restart_checkpoint(flag, tmp_path):
    trainer = Scaled(tmp_path, epoch=3, logged=4)  # epoch 3 in progress, its learning rate already logged
    os.kill(os.getpid(), signal.SIGUSR1)
    with pytest.raises(preempt.Preempted):
        trainer.train_step(1.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_latest.pth"]  # no partial file left
    checkpoint = torch.load(tmp_path / "checkpoint_latest.pth", weights_only=False)
    assert checkpoint["current_epoch"] == 3  # --c restarts epoch 3
    assert checkpoint["logging"] == {"train_losses": [0, 1, 2], "lrs": [0, 1, 2], "note": "kept"}
    assert trainer.current_epoch == 3
    assert "preempted (SIGUSR1) in epoch 3" in trainer.lines[-1]


def test_torchrun_is_recognised_by_its_variables():
    names = {"RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert under_torchrun(names)
    assert not under_torchrun({k: v for k, v in names.items() if k != "MASTER_PORT"})


def test_without_torchrun_the_module_is_nnunetv2_train(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    res = subprocess.run([sys.executable, "-m", "sss_nnunet.train", "--help"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for option in ("dataset_name_or_id", "-tr", "-num_gpus", "--npz", "--c", "--val_best", "-device"):
        assert option in res.stdout


def test_main_called_in_process_gives_back_the_signal_handlers_and_nnunet_finder(monkeypatch):
    """A caller that goes on after ``main()`` (notebook, test) keeps its own SIGTERM handling: a leaked flag
    handler made forked Pool workers survive ``Pool.terminate()`` and hung the next in-process nnU-Net call."""
    import signal
    import sys

    from nnunetv2.run import run_training as rt

    from sss_nnunet import train

    before = {s: signal.getsignal(s) for s in preempt.SIGNALS}
    finder = rt.recursive_find_trainer_class_by_name
    hook = sys.excepthook
    monkeypatch.setattr(sys, "argv", ["sss_nnunet.train", "--help"])
    with pytest.raises(SystemExit):
        train.main()
    assert {s: signal.getsignal(s) for s in preempt.SIGNALS} == before
    assert rt.recursive_find_trainer_class_by_name is finder and sys.excepthook is hook
