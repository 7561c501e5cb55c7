"""nnU-Net's own multi-GPU path (``nnUNetv2_train ... -num_gpus 2``: ``run_training`` -> ``mp.spawn(run_ddp)``)
on the CPU, for tests. Run as ``python -c "import ddp_on_cpu; ddp_on_cpu.main()" DATASET TRAINER OUT [--c]``
with this folder on PYTHONPATH (the spawned processes import this module by name).

Substituted in every spawned process, for the test only: the ``gloo`` backend for ``nccl``, the CPU for
``cuda:rank`` (``torch.cuda.set_device`` a no-op, the trainer's device and grad scaler set back to the CPU's,
DDP without ``device_ids``). Everything else is nnU-Net's code: ``run_ddp``, ``maybe_load_checkpoint`` (``--c``),
the trainer's DDP wrapping, per-rank batch size, data loading, all-reduce, rank-0 checkpointing, validation.

Each process records into OUT: ``weights_{event}_rank{r}_run{RUN}.pt`` (the plain network's state dict at
``on_train_start`` and ``on_train_end``), ``steps_rank{r}_run{RUN}.json`` (loss and data checksum per
train_step) and ``saves_rank{r}_run{RUN}.json`` (the files each rank's ``torch.save`` wrote).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _record(out: Path, name: str, item) -> None:
    path = out / name
    items = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(items + [item]))


def _patch_for_cpu(out: Path, run: str) -> None:
    import torch
    import torch.distributed as dist
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module

    real_init_process_group = dist.init_process_group
    dist.init_process_group = lambda backend=None, *a, **kw: real_init_process_group("gloo", *a, **kw)
    torch.cuda.set_device = lambda *a, **kw: None
    real_ddp = trainer_module.DDP
    trainer_module.DDP = lambda module, device_ids=None, **kw: real_ddp(module, **kw)

    cls = trainer_module.nnUNetTrainer
    real_init, real_start, real_end, real_step = cls.__init__, cls.on_train_start, cls.on_train_end, cls.train_step

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.device, self.grad_scaler = torch.device("cpu"), None  # nnU-Net set cuda:rank and GradScaler("cuda")

    def plain_weights(self) -> dict:
        mod = self.network.module if self.is_ddp else self.network
        mod = getattr(mod, "_orig_mod", mod)
        return {k: v.detach().clone() for k, v in mod.state_dict().items()}

    def on_train_start(self):
        real_start(self)
        torch.save(plain_weights(self), out / f"weights_start_rank{self.local_rank}_run{run}.pt")

    def on_train_end(self):
        torch.save(plain_weights(self), out / f"weights_end_rank{self.local_rank}_run{run}.pt")
        real_end(self)

    def train_step(self, batch):
        result = real_step(self, batch)
        _record(out, f"steps_rank{self.local_rank}_run{run}.json",
                {"loss": float(result["loss"]), "data": float(batch["data"].double().sum()),
                 "batch": int(batch["data"].shape[0]), "world": dist.get_world_size()})
        return result

    cls.__init__, cls.on_train_start, cls.on_train_end, cls.train_step = init, on_train_start, on_train_end, train_step

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and Path(f).parent != out:
            _record(out, f"saves_rank{dist.get_rank()}_run{run}.json", str(f))
        return real_save(obj, f, *args, **kwargs)

    torch.save = save


def run_ddp_on_cpu(rank: int, *args) -> None:
    """What mp.spawn runs in each process: the patches, then nnU-Net's ``run_ddp``."""
    _patch_for_cpu(Path(os.environ["SSS_DDP_OUT"]), os.environ["SSS_DDP_RUN"])
    from nnunetv2.run import run_training

    run_training.run_ddp(rank, *args)


def main(argv: list[str] | None = None) -> None:
    import torch
    from nnunetv2.run import run_training

    dataset, trainer, out, *flags = argv or sys.argv[1:]
    os.environ["SSS_DDP_OUT"] = out
    run_training.run_ddp = run_ddp_on_cpu  # the function run_training hands to mp.spawn
    run_training.run_training(dataset, "3d_fullres", 0, trainer, num_gpus=2, continue_training="--c" in flags,
                              device=torch.device("cuda"))  # nnU-Net asserts cuda for num_gpus > 1
