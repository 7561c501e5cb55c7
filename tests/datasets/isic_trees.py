"""Miniature ISIC downloads in the official archive layouts (JPEG images, 0/255 PNG masks, odd sizes).

Folder and file names as in the ISIC challenge archives (ISIC 2016 ``_Segmentation.png``,
2017/2018 ``_segmentation.png``), with the extra files the archives hold (superpixels,
metadata CSV, LICENSE / ATTRIBUTION) so that a converter must ignore them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((13, 17), (15, 11), (9, 21), (17, 17), (11, 19))  # (height, width), odd on purpose


def image_and_mask(index: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) with a bright ellipse, and its 0/255 mask (H, W)."""
    h, w = SIZES[index % len(SIZES)]
    rng = np.random.default_rng(index)
    y, x = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    mask = (((y - cy) / (0.3 * h)) ** 2 + ((x - cx) / (0.3 * w)) ** 2 <= 1).astype(np.uint8) * 255
    image = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    image[mask > 0] += np.array([150, 100, 60], dtype=np.uint8)
    return image, mask


def write_part(root: Path, images: str, masks: str, suffix: str, numbers: list[int], extras: bool = True) -> None:
    (root / images).mkdir(parents=True)
    (root / masks).mkdir(parents=True)
    for n in numbers:
        image, mask = image_and_mask(n)
        name = f"ISIC_{n:07d}"
        Image.fromarray(image).save(root / images / f"{name}.jpg", quality=95)
        Image.fromarray(mask).save(root / masks / f"{name}{suffix}")
        if extras:
            Image.fromarray(image).save(root / images / f"{name}_superpixels.png")
    if extras:
        for folder in (images, masks):
            (root / folder / "LICENSE.txt").write_text("CC-BY-NC\n")
            (root / folder / "ATTRIBUTION.txt").write_text("ISIC Archive\n")
        (root / images / f"{images}_metadata.csv").write_text("image_id,age_approximate,sex\n")


ISIC2016_TRAIN = [0, 1, 2, 4, 6, 7, 9]
ISIC2016_TEST = [3, 5, 8]
ISIC2017_TRAIN = list(range(10, 18))
ISIC2017_VAL = [30, 31, 32]
ISIC2017_TEST = [40, 41]
ISIC2018_TRAIN = list(range(24306, 24315))
ISIC2018_VAL = [34321, 34322, 34323]


def build_isic2016(root: Path) -> Path:
    write_part(root, "ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth",
               "_Segmentation.png", ISIC2016_TRAIN, extras=False)
    write_part(root, "ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth",
               "_Segmentation.png", ISIC2016_TEST, extras=False)
    return root


def build_isic2017(root: Path) -> Path:
    """Training and validation at the top, the official test set in a ``test/`` subfolder."""
    write_part(root, "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", "_segmentation.png",
               ISIC2017_TRAIN)
    write_part(root, "ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", "_segmentation.png",
               ISIC2017_VAL)
    write_part(root / "test", "ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth", "_segmentation.png",
               ISIC2017_TEST)
    return root


def build_isic2018(root: Path) -> Path:
    """Training and validation; no test ground truth (as before its release)."""
    write_part(root, "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth", "_segmentation.png",
               ISIC2018_TRAIN)
    write_part(root, "ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth",
               "_segmentation.png", ISIC2018_VAL)
    return root


def isic_name(n: int) -> str:
    return f"ISIC_{n:07d}"
