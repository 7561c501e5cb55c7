"""``ScaleMixin``: what any nnU-Net trainer needs to run under torchrun and to survive preemption.

:func:`scaled` returns ``type(T.__name__, (ScaleMixin, T), {})`` for the trainer class ``T`` that
nnU-Net finds: same name (results folder, checkpoints' ``trainer_name`` and ``nnUNetv2_predict``
are unchanged), nnU-Net's code untouched. nnU-Net's own DDP (``-num_gpus``) already splits the
global batch and the foreground oversampling over ``dist.get_world_size()`` ranks by global rank
(``_set_batch_size_and_oversample``) and guards its writes with ``self.local_rank == 0``, where
``local_rank`` is in fact the global rank. What breaks beyond one node, and what the mixin changes:

- device: nnU-Net puts rank ``r`` on ``cuda:r`` (no such GPU on the second node) and always on
  CUDA; here ``cuda:LOCAL_RANK``, or the CPU (gloo) with ``-device cpu``;
- DDP wrapper: ``device_ids=[global rank]`` -> ``[LOCAL_RANK]`` on CUDA, ``None`` on the CPU; on the
  CPU BatchNorm layers stay per-rank (SyncBatchNorm needs a GPU; nnU-Net's networks use InstanceNorm);
- checkpoints are written to a temporary file and renamed (a kill while saving keeps the previous one);
- preemption (``sss_nnunet.scale.preempt``): after every training and validation iteration the
  ranks agree (all-reduce of the flag) whether a SIGUSR1 / SIGTERM arrived on any of them; if so,
  global rank 0 writes ``checkpoint_latest.pth`` for a restart of the current epoch (weights and
  optimiser as they are, the epoch's partial log entries dropped), all ranks meet at a barrier and
  :class:`~sss_nnunet.scale.preempt.Preempted` is raised. Bound: one iteration plus the checkpoint
  write. The resumed run repeats the interrupted epoch from its start, so it trains at most one
  epoch's iterations more than an uninterrupted run.

Defines no ``__init__``: nnU-Net records the trainer's ``__init__`` arguments by name.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os

import torch
import torch.distributed as dist

from sss_nnunet.scale import preempt

TRAINER_MODULE = "nnunetv2.training.nnUNetTrainer.nnUNetTrainer"
LATEST = "checkpoint_latest.pth"


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


class ScaleMixin:
    """Mixed in before an nnU-Net trainer class by :func:`scaled` (see the module docstring)."""

    def initialize(self):
        if self.was_initialized or not self.is_ddp:
            return super().initialize()
        requested = torch.device(self.my_init_kwargs.get("device", "cuda"))
        if requested.type == "cuda":
            self.device = torch.device("cuda", local_rank())
        else:
            self.device = torch.device("cpu")
            self.grad_scaler = None  # nnU-Net made a CUDA GradScaler for its cuda:rank device
        module = importlib.import_module(TRAINER_MODULE)
        original_ddp = module.DDP
        device = self.device

        def ddp(network, device_ids=None, **kwargs):
            return original_ddp(network, device_ids=[device.index] if device.type == "cuda" else None, **kwargs)

        sync_bn = torch.nn.SyncBatchNorm.convert_sync_batchnorm
        module.DDP = ddp
        if device.type != "cuda":
            torch.nn.SyncBatchNorm.convert_sync_batchnorm = staticmethod(lambda network, *a, **k: network)
        try:
            return super().initialize()
        finally:
            module.DDP = original_ddp
            torch.nn.SyncBatchNorm.convert_sync_batchnorm = sync_bn

    def save_checkpoint(self, filename: str) -> None:
        """The trainer's checkpoint, written to a hidden file in the same folder and renamed over ``filename``."""
        folder, name = os.path.split(os.fspath(filename))
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.scale-partial")
        try:
            super().save_checkpoint(tmp)
            if os.path.isfile(tmp):  # nothing written on ranks > 0 or with checkpointing disabled
                os.replace(tmp, filename)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def train_step(self, batch: dict) -> dict:
        out = super().train_step(batch)
        self._stop_if_preempted()
        return out

    def validation_step(self, batch: dict) -> dict:
        out = super().validation_step(batch)
        self._stop_if_preempted()
        return out

    # ------------------------------------------------------------------ preemption
    def _preemption_agreed(self) -> bool:
        """Whether any rank received SIGUSR1 / SIGTERM (one all-reduce per iteration under DDP)."""
        mine = preempt.requested()
        if not self.is_ddp:
            return mine
        on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        flag = torch.tensor([int(mine)], dtype=torch.int32, device=on)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _stop_if_preempted(self) -> None:
        if not self._preemption_agreed():
            return
        epoch = self.current_epoch
        self._save_restart_checkpoint(epoch)
        self.print_to_log_file(
            f"sss-nnunet: preempted ({preempt.signal_name() or 'signal on another rank'}) in epoch {epoch}: "
            f"{LATEST} written; rerun with --c to continue from epoch {epoch} (exit {preempt.EXIT_PREEMPTED})",
            also_print_to_console=True)
        if self.is_ddp:
            dist.barrier()
        self._stop_loaders()
        raise preempt.Preempted(f"preempted in epoch {epoch}")

    def _save_restart_checkpoint(self, epoch: int) -> None:
        """checkpoint_latest.pth whose ``current_epoch`` is ``epoch`` (nnU-Net stores ``current_epoch + 1``)
        and whose log curves end before it; rank 0 writes."""
        logging = self.logger.get_checkpoint()
        for values in logging.values():
            if isinstance(values, list):
                del values[epoch:]
        self.current_epoch = epoch - 1
        try:
            self.save_checkpoint(os.path.join(self.output_folder, LATEST))
        finally:
            self.current_epoch = epoch

    def _stop_loaders(self) -> None:
        for loader in (self.dataloader_train, self.dataloader_val):
            finish = getattr(loader, "_finish", None)
            if finish is not None:
                with contextlib.redirect_stdout(io.StringIO()):
                    finish()


def scaled(base: type) -> type:
    """``base`` with :class:`ScaleMixin` in front, under ``base``'s own name and module."""
    if issubclass(base, ScaleMixin):
        return base
    return type(base.__name__, (ScaleMixin, base), {
        "__module__": base.__module__, "__qualname__": base.__qualname__, "__doc__": base.__doc__})
