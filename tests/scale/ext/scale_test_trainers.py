"""A user's trainer for tests/scale, found through nnUNet_extTrainer: nnU-Net's own nnUNetTrainer
(SGD, PlainConvUNet with at most 8 features per stage) trained on fixed batches, so that a DDP run
and a single-process run see the same global batches and can be compared weight by weight.

Iteration ``i`` of the run (counted across epochs, so a resumed run continues the sequence) uses the
global batch of training cases ``(i * B + j) % n`` for ``j < B`` (``B``: the plans' batch size), each
centre-cropped / zero-padded to the patch, no augmentation, deep-supervision targets by nearest
interpolation; a DDP rank takes its slice of it, sized by
nnU-Net's own split (``_set_batch_size_and_oversample``). Environment: ``SCALE_TEST_EPOCHS`` (2),
``SCALE_TEST_STEP_SECONDS`` (sleep per training step, 0), ``SCALE_TEST_DUMP`` (folder for
``rank{r}.pid`` and ``rank{r}.start.pt`` (weights) at the start of training, ``rank{r}.pt`` at its end).
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


def _centre(array: np.ndarray, patch) -> np.ndarray:
    """(C, *spatial) cropped / zero-padded around the centre to (C, *patch)."""
    out = np.zeros((array.shape[0], *patch), np.float32)
    src, dst = [slice(None)], [slice(None)]
    for size, want in zip(array.shape[1:], patch):
        a, b = max(0, (size - want) // 2), max(0, (want - size) // 2)
        n = min(size, want)
        src.append(slice(a, a + n))
        dst.append(slice(b, b + n))
    out[tuple(dst)] = array[tuple(src)]
    return out


class FixedBatches:
    def __init__(self, trainer: nnUNetTrainer, keys: list[str], start: int):
        self.trainer, self.keys, self.i = trainer, sorted(keys), start
        self.dataset = trainer.dataset_class(trainer.preprocessed_dataset_folder, self.keys)
        world = dist.get_world_size() if trainer.is_ddp else 1
        rank = dist.get_rank() if trainer.is_ddp else 0
        self.global_batch = trainer.configuration_manager.batch_size
        sizes = [self.global_batch // world + (1 if r < self.global_batch % world else 0) for r in range(world)]
        assert sizes[rank] == trainer.batch_size, (sizes, rank, trainer.batch_size)
        self.low = sum(sizes[:rank])

    def __next__(self) -> dict:
        patch = self.trainer.configuration_manager.patch_size
        data, target = [], []
        for j in range(self.low, self.low + self.trainer.batch_size):
            key = self.keys[(self.i * self.global_batch + j) % len(self.keys)]
            image, seg, _, _ = self.dataset.load_case(key)
            data.append(_centre(np.asarray(image[:], np.float32), patch))
            target.append(np.maximum(_centre(np.asarray(seg[:], np.float32), patch), 0))
        self.i += 1
        seg = torch.from_numpy(np.stack(target))
        scales = self.trainer._get_deep_supervision_scales()
        targets = [F.interpolate(seg, size=[round(p * s) for p, s in zip(patch, scale)], mode="nearest-exact")
                   for scale in scales]
        return {"data": torch.from_numpy(np.stack(data)), "target": targets}


class ScaleTestTrainer(nnUNetTrainer):
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("SCALE_TEST_EPOCHS", "2"))
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        self.save_every = 1
        arch = self.configuration_manager.network_arch_init_kwargs  # the plans' dict: plans.json gets it too
        arch["features_per_stage"] = [min(f, 8) for f in arch["features_per_stage"]]  # seconds on a CPU

    def initialize(self):
        if not self.was_initialized:
            random.seed(0)
            np.random.seed(0)  # noqa: NPY002
            torch.manual_seed(0)
        super().initialize()

    def get_dataloaders(self):
        tr_keys, val_keys = self.do_split()
        return (FixedBatches(self, tr_keys, self.current_epoch * self.num_iterations_per_epoch),
                FixedBatches(self, val_keys, self.current_epoch * self.num_val_iterations_per_epoch))

    def train_step(self, batch: dict) -> dict:
        time.sleep(float(os.environ.get("SCALE_TEST_STEP_SECONDS", "0")))
        return super().train_step(batch)

    def _dump(self, suffix: str, obj) -> None:
        folder = os.environ.get("SCALE_TEST_DUMP")
        if folder:
            rank = dist.get_rank() if self.is_ddp else 0
            path = os.path.join(folder, f"rank{rank}{suffix}")
            if suffix == ".pid":
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            else:
                torch.save(obj, path)

    def _weights(self) -> dict:
        net = self.network.module if self.is_ddp else self.network
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    def on_train_start(self):
        super().on_train_start()
        self._dump(".pid", None)
        self._dump(".start.pt", self._weights())

    def on_train_end(self):
        super().on_train_end()
        self._dump(".pt", self._weights())
