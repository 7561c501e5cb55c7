"""A tiny nnU-Net raw dataset for end-to-end tests: blobs in noise, anisotropic spacing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_XYZ = (1.0, 1.0, 2.0)  # SimpleITK order (x=W, y=H, z=D), mm


def _case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """image (D, H, W) float32 and label (D, H, W) uint8 with labels 1 (sphere) and 2 (box)."""
    D, H, W = shape
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    label = np.zeros(shape, np.uint8)
    c = rng.uniform([D * 0.3, H * 0.3, W * 0.3], [D * 0.5, H * 0.5, W * 0.5])
    label[((z - c[0]) * 2) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < (H / 5) ** 2] = 1
    z0, y0, x0 = rng.integers([D // 2, H // 2, W // 2], [D - 4, H - 8, W - 8])
    label[z0:z0 + 3, y0:y0 + 6, x0:x0 + 6] = 2
    image = (label * 100.0 + rng.normal(0, 20, shape)).astype(np.float32)
    return image, label


def write_tiny_dataset(raw: Path, dataset_id: int = 977, n_train: int = 6, n_test: int = 2,
                       shape: tuple[int, int, int] = (16, 32, 32), regions: bool = False, seed: int = 0) -> Path:
    """Writes ``raw/DatasetNNN_Tiny`` (imagesTr, labelsTr, imagesTs, labelsTs, dataset.json)."""
    folder = raw / f"Dataset{dataset_id:03d}_Tiny"
    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train + n_test):
        image, label = _case(rng, shape)
        sub = "Tr" if i < n_train else "Ts"
        name = f"tiny_{i:03d}"
        for arr, path in ((image, folder / f"images{sub}" / f"{name}_0000.nii.gz"),
                          (label, folder / f"labels{sub}" / f"{name}.nii.gz")):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing(SPACING_XYZ)
            sitk.WriteImage(img, str(path))
    labels = {"background": 0, "sphere": 1, "box": 2}
    if regions:
        labels = {"background": 0, "any": [1, 2], "box": [2]}
    meta = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": n_train, "file_ending": ".nii.gz"}
    if regions:
        meta["regions_class_order"] = [1, 2]
    (folder / "dataset.json").write_text(json.dumps(meta, indent=2))
    return folder
