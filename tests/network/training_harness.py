"""In-process training of RWKV-SSS on small synthetic 3D sets, with nnU-Net's loss and deep supervision.

Used by the recipe tests and, as a script, to measure which recipe trains which network:

    python tests/network/training_harness.py --recipe nnunet --steps 120 [--set blobs|context] [--override k=v]

Data: ``blobs``: (16, 32, 32) volumes with 1-3 bright tilted ellipsoids in smooth noise, label 1 = blob
(easy: intensity decides); ``context``: the long-range-context cases of ``datasets.synthetic_context``
(24 x 24 x 64, the class of two blobs written by a marker 45-60 mm away). Images are z-scored per case.
Loss: nnU-Net's DC_and_CE_loss (MemoryEfficientSoftDiceLoss, no background Dice) through its
DeepSupervisionWrapper with nnU-Net's weights (1, 1/2, 1/4, ..., lowest 0, normalised); targets are
downsampled by nearest neighbour to every output. Dice is measured on held-out cases on the
full-resolution output (argmax), per foreground class.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sss_nnunet.network import RWKVSSS  # noqa: E402
from sss_nnunet.trainers.recipes import recipe  # noqa: E402

BLOB_SHAPE = (16, 32, 32)
# the topology nnU-Net plans for the two sets (3d_fullres, whole volume as the patch), narrower features
TOPOLOGY = {
    "blobs": dict(n_stages=4, strides=[1, 2, 2, 2], features_per_stage=[8, 16, 32, 64]),
    "context": dict(n_stages=5, strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 1, 2], [1, 1, 2]],
                    features_per_stage=[8, 16, 32, 64, 64]),
    # the plans' own widths (nnU-Net's 32 .. 320) on the context set
    "context-full": dict(n_stages=5, strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 1, 2], [1, 1, 2]],
                         features_per_stage=[32, 64, 128, 256, 320]),
}


def blob_case(rng: np.random.Generator, shape=BLOB_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    coords = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    label = np.zeros(shape, np.int64)
    for _ in range(rng.integers(1, 4)):
        c = [rng.uniform(3, n - 4) for n in shape]
        semi = rng.uniform(2.0, 5.0, 3)
        label[sum(((x - ci) / s) ** 2 for x, ci, s in zip(coords, c, semi)) < 1] = 1
    image = label * 3.0 + rng.normal(0, 1.0, shape)
    return image.astype(np.float32), label


def context_case(seed: int, index: int, subset: str) -> tuple[np.ndarray, np.ndarray]:
    from sss_nnunet.datasets.synthetic_context import make_context_case

    case = make_context_case(seed, index, subset)
    return case.image.astype(np.float32), case.label.astype(np.int64)


def make_set(kind: str, n: int, seed: int, subset: str = "Tr") -> tuple[torch.Tensor, torch.Tensor]:
    """(images (n, 1, *S) z-scored per case, labels (n, 1, *S) int64)."""
    if kind == "blobs":
        rng = np.random.default_rng([seed, 0 if subset == "Tr" else 1])
        cases = [blob_case(rng) for _ in range(n)]
    else:
        cases = [context_case(seed, i, subset) for i in range(n)]
    x = torch.from_numpy(np.stack([c[0] for c in cases]))[:, None]
    x = (x - x.mean(dim=(2, 3, 4), keepdim=True)) / x.std(dim=(2, 3, 4), keepdim=True)
    return x, torch.from_numpy(np.stack([c[1] for c in cases]))[:, None]


def n_classes(kind: str) -> int:
    return 2 if kind == "blobs" else 3


def build(kind: str, seed: int = 0, **overrides) -> RWKVSSS:
    torch.manual_seed(seed)
    top = TOPOLOGY[kind]
    return RWKVSSS(1, n_classes(kind), top["n_stages"], top["features_per_stage"], nn.Conv3d, 3, top["strides"],
                   deep_supervision=True, **overrides)


def nnunet_loss(n_outputs: int) -> nn.Module:
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / 2 ** i for i in range(n_outputs)])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def targets(label: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [label if o.shape[2:] == label.shape[2:] else
            F.interpolate(label.float(), size=o.shape[2:], mode="nearest").long() for o in outputs]


def dice(pred: torch.Tensor, label: torch.Tensor, classes: int) -> list[float]:
    """Dice per foreground class of argmax predictions (1.0 when both are empty)."""
    out = []
    for c in range(1, classes):
        p, g = pred == c, label == c
        denom = int(p.sum() + g.sum())
        out.append(1.0 if denom == 0 else 2 * float((p & g).sum()) / denom)
    return out


@torch.no_grad()
def evaluate(net: RWKVSSS, x: torch.Tensor, y: torch.Tensor, classes: int) -> list[float]:
    """Mean Dice per foreground class of the full-resolution output over the cases (batch 1)."""
    net.eval()
    scores = [dice(net(x[i:i + 1])[0].argmax(1, keepdim=True), y[i:i + 1], classes) for i in range(len(x))]
    net.train()
    return [float(np.mean(s)) for s in zip(*scores)]


def train(net: RWKVSSS, recipe_name: str, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int = 2,
          steps_per_epoch: int = 5, seed: int = 0, log=None, after_step=None) -> list[float]:
    """``steps`` optimisation steps of the recipe (its schedule over steps / steps_per_epoch epochs,
    stepped per epoch as nnU-Net does, gradient clipping at 12 as nnU-Net); returns the losses."""
    epochs = math.ceil(steps / steps_per_epoch)
    optimizer, scheduler = recipe(recipe_name)(net, epochs)
    g = torch.Generator().manual_seed(seed)
    loss_fn, losses = None, []
    net.train()
    for step in range(steps):
        if step % steps_per_epoch == 0:
            scheduler.step(step // steps_per_epoch)
        idx = torch.randint(len(x), (batch,), generator=g)
        xb, yb = x[idx], y[idx]
        if torch.rand(1, generator=g).item() < 0.5:  # a mirror, so that a batch is not always the same
            xb, yb = xb.flip(-1), yb.flip(-1)
        outputs = net(xb)
        loss_fn = loss_fn or nnunet_loss(len(outputs))
        loss = loss_fn(outputs, targets(yb, outputs))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        optimizer.step()
        losses.append(float(loss))
        if after_step is not None:
            after_step(step, net)
        if log is not None and (step + 1) % steps_per_epoch == 0:
            log(step + 1, float(np.mean(losses[-steps_per_epoch:])))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default="nnunet")
    parser.add_argument("--set", default="blobs", choices=sorted(TOPOLOGY))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--override", action="append", default=[], help="RWKVSSS argument key=python-literal")
    args = parser.parse_args()
    import ast

    overrides = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.override)}
    torch.set_num_threads(1)
    x, y = make_set(args.set, args.n_train, args.seed)
    xv, yv = make_set(args.set, 4, args.seed, "Ts")
    net = build(args.set, args.seed, **overrides)
    classes = n_classes(args.set)
    t0 = time.time()

    def log(step, loss):
        if step % args.eval_every == 0:
            print(f"step {step} loss {loss:.3f} val dice {evaluate(net, xv, yv, classes)} {time.time() - t0:.0f}s",
                  flush=True)

    train(net, args.recipe, x, y, args.steps, seed=args.seed, log=log)
    print("final", args.recipe, overrides, evaluate(net, xv, yv, classes), flush=True)


if __name__ == "__main__":
    main()
