"""Time our Dice/HD95 evaluation against medpy on synthetic CT-sized cases.

Builds N synthetic cases (default 12 of 512x512x150 voxels, i.e. numpy shape
(150, 512, 512), spacing 0.8 x 0.8 x 2.5 mm) with 8 "organs" (deformed ellipsoids;
the prediction is a perturbed copy with an occasional spurious blob), writes them
as .nii.gz, then scores every case and class twice with the same process count:

- ours:  ``sss_nnunet.evaluation.evaluate.evaluate_pairs`` (crop per class, SciPy EDT);
- medpy: ``medpy.metric.binary.dc`` and ``hd95`` on the full volume, same loading; the empty-mask
         rules of the protocol written out in this file (not taken from ``Protocol.score``).

Prints both wall times, the ratio, and the largest difference between the results.

    python benchmarks/bench_metrics.py [--cases 12] [--shape 150 512 512] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sss_nnunet.datasets.specs import SYNAPSE8
from sss_nnunet.evaluation.cases import CasePair, load_label_map, pair_cases
from sss_nnunet.evaluation.evaluate import evaluate_pairs
from sss_nnunet.evaluation.protocols import PROTOCOLS, Protocol
from sss_nnunet.evaluation.tasks import task_from_spec

SPACING = (2.5, 0.8, 0.8)  # mm, numpy order (D, H, W)
N_ORGANS = 8


def _blob(shape, center, radii, phases) -> tuple[tuple[slice, ...], np.ndarray]:
    """A deformed ellipsoid: mask inside its bounding box (and the box)."""
    lo = [max(0, int(c - 1.35 * r)) for c, r in zip(center, radii)]
    hi = [min(n, int(c + 1.35 * r) + 1) for n, c, r in zip(shape, center, radii)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    u = [(np.arange(a, b, dtype=np.float32) - c) / r for a, b, c, r in zip(lo, hi, center, radii)]
    uz, uy, ux = np.meshgrid(*u, indexing="ij", sparse=True)
    rho = np.sqrt(uz**2 + uy**2 + ux**2)
    limit = (
        1 + 0.15 * np.sin(3 * ux + phases[0]) * np.cos(2 * uy + phases[1]) + 0.1 * np.sin(2 * uz + phases[2])
    )
    return box, rho < limit


def make_case(seed: int, shape=(150, 512, 512), n_organs: int = N_ORGANS) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) uint8 label maps of ``shape`` (D, H, W) with labels 1..n_organs."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    size = np.array(shape, float)
    for label in range(1, n_organs + 1):
        radii = size * rng.uniform([0.06, 0.04, 0.04], [0.25, 0.18, 0.18])
        center = rng.uniform(0.15 * size, 0.85 * size)
        phases = rng.uniform(0, 2 * np.pi, 3)
        box, mask = _blob(shape, center, radii, phases)
        gt[box][mask] = label
        # prediction: shifted, rescaled, differently deformed
        p_center = center + rng.normal(0, 1.5, 3)
        p_radii = radii * rng.normal(1.0, 0.06, 3).clip(0.8, 1.2)
        box, mask = _blob(shape, p_center, p_radii, phases + rng.normal(0, 0.4, 3))
        pred[box][mask] = label
        if rng.random() < 0.25:  # a small spurious blob elsewhere
            box, mask = _blob(
                shape, rng.uniform(0.1 * size, 0.9 * size), size * 0.015 + 1, rng.uniform(0, 6, 3)
            )
            pred[box][mask] = label
    return gt, pred


def write_cases(folder: Path, n: int, shape) -> list[CasePair]:
    """Write n cases as folder/{gt,pred}/case_XXX.nii.gz and pair them."""
    for sub in ("gt", "pred"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        for sub, array in zip(("gt", "pred"), make_case(i, shape)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(tuple(reversed(SPACING)))
            sitk.WriteImage(image, str(folder / sub / f"case_{i:03d}.nii.gz"), useCompression=True)
    return pair_cases(folder / "pred", folder / "gt", ".nii.gz")


def empty_mask_reference(p_any: bool, g_any: bool, shape, spacing, protocol: Protocol) -> tuple[float, float]:
    """(dice, hd95) when a mask is empty, written from the protocol descriptions independently of
    ``Protocol.score``: both empty -> (1, 0); one empty -> Dice 0 (as medpy's ``dc``), HD95 0 (paper) or
    the image diagonal in mm, sqrt(sum((size * spacing)^2)) (strict)."""
    assert not (p_any and g_any)
    if not p_any and not g_any:
        return 1.0, 0.0
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    return 0.0, diagonal if protocol.penalize_empty else 0.0


def medpy_scores(pred: np.ndarray, gt: np.ndarray, spacing, protocol: Protocol, n_classes: int = N_ORGANS):
    """[(dice, hd95)] per label 1..n_classes with medpy on the full volume, empty masks by
    :func:`empty_mask_reference`."""
    from medpy.metric import binary

    out = []
    for label in range(1, n_classes + 1):
        p, g = pred == label, gt == label
        if p.any() and g.any():
            h = binary.hd95(p, g, voxelspacing=spacing if protocol.use_spacing else None)
            out.append((binary.dc(p, g), h))
        else:
            out.append(empty_mask_reference(bool(p.any()), bool(g.any()), gt.shape, spacing, protocol))
    return out


def _medpy_case(pair: CasePair, protocol: Protocol):
    pred, _ = load_label_map(pair.pred)
    gt, spacing = load_label_map(pair.gt)
    return medpy_scores(pred, gt, spacing, protocol)


def run_medpy(pairs, protocol: Protocol, workers: int):
    if workers <= 1:
        return [_medpy_case(p, protocol) for p in pairs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_medpy_case, pairs, [protocol] * len(pairs)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--shape", type=int, nargs=3, default=(150, 512, 512), metavar=("D", "H", "W"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="strict")
    args = parser.parse_args(argv)
    protocol = PROTOCOLS[args.protocol]
    task = task_from_spec(SYNAPSE8)
    print(
        f"{args.cases} cases of shape {tuple(args.shape)} (D, H, W), {N_ORGANS} organs, "
        f"spacing {SPACING} mm, protocol {protocol.name}, {args.workers} worker process(es)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        t = time.perf_counter()
        pairs = write_cases(Path(tmp), args.cases, args.shape)
        print(f"generated and wrote the cases in {time.perf_counter() - t:.1f} s", flush=True)

        t = time.perf_counter()
        ours = evaluate_pairs(pairs, task, protocol, workers=args.workers, progress=False)
        t_ours = time.perf_counter() - t
        print(f"ours : {t_ours:8.1f} s", flush=True)

        t = time.perf_counter()
        ref = run_medpy(pairs, protocol, args.workers)
        t_medpy = time.perf_counter() - t
        print(f"medpy: {t_medpy:8.1f} s", flush=True)

    ref_flat = [s for case in ref for s in case]
    max_dice = max(abs(r.dice - d) for r, (d, _) in zip(ours, ref_flat))
    max_hd = max(abs(r.hd95 - h) for r, (_, h) in zip(ours, ref_flat))
    print(f"ratio medpy / ours: {t_medpy / t_ours:.1f}x faster")
    print(f"max |difference|: dice {max_dice:.3g}, hd95 {max_hd:.3g} ({protocol.hd95_unit})")
    return 0 if max(max_dice, max_hd) < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
