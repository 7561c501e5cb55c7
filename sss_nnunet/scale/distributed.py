"""nnU-Net's ``run_training`` for a process started by torchrun (one process per GPU, any number of nodes).

Same signature as ``nnunetv2.run.run_training.run_training``; ``sss_nnunet.train`` puts it in place
when torchrun's variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``) are set.

- process group: ``nccl`` with ``-device cuda`` (GPU = ``LOCAL_RANK``), ``gloo`` with ``-device cpu``
  (torch threads: the CPU count divided by ``LOCAL_WORLD_SIZE``); rendezvous from torchrun's environment;
  timeout ``SSS_DDP_TIMEOUT_MINUTES`` (default 30; rank 0 unpacks the dataset while the others wait);
- only global rank 0 touches ``nnUNet_results``: the other ranks build their trainer with
  ``nnUNet_results`` pointed at a private temporary folder (removed at exit), so nothing a trainer
  writes there (logs, plans copies, progress.png, checkpoints) reaches the results of another node;
- ``--c``: rank 0 picks the checkpoint as nnU-Net does (final, latest, best) and sends its bytes to
  every rank, so the nodes need no shared results folder; any number of nodes may resume any checkpoint;
- validation (end of training, ``--val``): global rank 0 alone, on the unwrapped network, exactly as a
  single-process run; the other ranks leave after training.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile

import torch
import torch.distributed as dist

from sss_nnunet.errors import SSSError
from sss_nnunet.scale import preempt

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV = "SSS_DDP_TIMEOUT_MINUTES"
CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")  # nnU-Net's --c order


def under_torchrun(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return all(v in env for v in TORCHRUN_VARS)


def _rank() -> tuple[int, int, int]:
    return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])


def _init(device: torch.device) -> torch.device:
    _, local, _ = _rank()
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    elif device.type == "cpu":
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, torch.get_num_threads() // per_node))
        backend = "gloo"
    else:
        raise SSSError(f"torchrun training runs on -device cuda or cpu, not {device.type}")
    minutes = int(os.environ.get(TIMEOUT_ENV, "30"))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
    return device


def _private_results(rank: int) -> str | None:
    """Points ``nnUNet_results`` of ranks > 0 at a new temporary folder; returns it (None on rank 0)."""
    if rank == 0:
        return None
    scratch = tempfile.mkdtemp(prefix=f"sss-nnunet-rank{rank}-")
    os.environ["nnUNet_results"] = scratch
    os.environ.pop("nnUNet_wandb_enabled", None)
    return scratch


def _shared_checkpoint(trainer, rank: int, scratch: str | None) -> None:
    """``--c``: rank 0 reads the checkpoint nnU-Net would resume from and broadcasts its bytes."""
    payload = [None, None]
    if rank == 0:
        for name in CHECKPOINTS:
            path = os.path.join(trainer.output_folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    payload = [name, f.read()]
                break
        else:
            print("WARNING: Cannot continue training because there seems to be no checkpoint available to "
                  "continue from. Starting a new training...")
    dist.broadcast_object_list(payload, src=0)
    name, data = payload
    if name is None:
        return
    if rank == 0:
        path = os.path.join(trainer.output_folder, name)
    else:
        path = os.path.join(scratch, name)
        with open(path, "wb") as f:
            f.write(data)
    trainer.print_to_log_file(f"sss-nnunet: continuing from {name} on {dist.get_world_size()} ranks")
    trainer.load_checkpoint(path)


def _validate_alone(trainer, npz: bool) -> None:
    """nnU-Net's final validation on this rank only: DDP wrapper and DDP mode off."""
    trainer.network = trainer.network.module
    trainer.is_ddp = False
    trainer.perform_actual_validation(npz)


def run_distributed(dataset_name_or_id, configuration: str, fold, trainer_class_name: str = "nnUNetTrainer",
                    plans_identifier: str = "nnUNetPlans", pretrained_weights: str | None = None,
                    num_gpus: int = 1, export_validation_probabilities: bool = False,
                    continue_training: bool = False, only_run_validation: bool = False,
                    disable_checkpointing: bool = False, val_with_best: bool = False,
                    device: torch.device = torch.device("cuda")) -> None:  # noqa: B008 (nnU-Net's signature)
    """One torchrun worker's share of ``nnUNetv2_train`` (arguments as nnU-Net's ``run_training``)."""
    from nnunetv2.run import run_training as rt
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    if num_gpus != 1:
        raise SSSError("-num_gpus starts nnU-Net's own single-node DDP; under torchrun set the processes with "
                       "--nproc-per-node instead")
    if continue_training and only_run_validation:
        raise SSSError("--c and --val cannot be combined")
    if continue_training and pretrained_weights:
        raise SSSError("--c and -pretrained_weights cannot be combined")
    if val_with_best and disable_checkpointing:
        raise SSSError("--val_best needs checkpoints; drop --disable_checkpointing")
    if fold != "all":
        fold = int(fold)
    rank, _, _ = _rank()
    device = _init(device)
    real_results = os.environ.get("nnUNet_results")
    scratch = _private_results(rank)
    try:
        trainer = rt.get_trainer_from_args(str(dataset_name_or_id), configuration, fold, trainer_class_name,
                                           plans_identifier, continue_training, device=device)
        if scratch and trainer.is_cascaded and real_results:  # lower-stage predictions are read, not written
            trainer.folder_with_segs_from_previous_stage = trainer.folder_with_segs_from_previous_stage.replace(
                scratch, real_results, 1)
        trainer.disable_checkpointing = disable_checkpointing
        trainer.initialize()  # DDP wrapping is collective: every rank, every mode
        if continue_training:
            _shared_checkpoint(trainer, rank, scratch)
        elif pretrained_weights:
            load_pretrained_weights(trainer.network, pretrained_weights, verbose=rank == 0)
        if not only_run_validation:
            if rank == 0:
                trainer.do_split()  # writes splits_final.json when missing; the other ranks then read it
            dist.barrier()
            try:
                trainer.run_training()
            except preempt.Preempted:
                dist.barrier()  # nobody leaves before every rank is done with its dataloaders
                raise
        if rank == 0:
            name = "checkpoint_best.pth" if val_with_best else "checkpoint_final.pth"
            if only_run_validation or val_with_best:
                path = os.path.join(trainer.output_folder, name)
                if not os.path.isfile(path):
                    raise SSSError(f"{path} does not exist: the training is not finished")
                trainer.load_checkpoint(path)
            _validate_alone(trainer, export_validation_probabilities)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
