"""ISIC skin lesion segmentation (Task 1 / Part 1 of the ISIC 2016, 2017 and 2018 challenges).

Raw layouts: the official archives (https://challenge.isic-archive.com/data/), extracted
into one folder (``--raw``); each folder may also sit one level deeper (e.g.
``train/ISIC-2017_Training_Data``). Images are ``ISIC_NNNNNNN.jpg``; other files in the
image folders (``*_superpixels.png``, ``*_metadata.csv``, LICENSE, ATTRIBUTION) are ignored::

    ISIC 2016  ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg               900 images
               ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png
               ISBI2016_ISIC_Part1_Test_Data/ISIC_0000003.jpg                   379 images
               ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_0000003_Segmentation.png
    ISIC 2017  ISIC-2017_Training_Data/ISIC_0000000.jpg                         2000 images
               ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png
               ISIC-2017_Validation_Data/, ISIC-2017_Validation_Part1_GroundTruth/   150
               ISIC-2017_Test_v2_Data/, ISIC-2017_Test_v2_Part1_GroundTruth/         600
    ISIC 2018  ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg                 2594 images
               ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png
               ISIC2018_Task1-2_Validation_Input/, ISIC2018_Task1_Validation_GroundTruth/  100
               ISIC2018_Task1-2_Test_Input/, ISIC2018_Task1_Test_GroundTruth/          1000

Output (nnU-Net 2D natural images, as nnU-Net's Dataset120_RoadSegmentation): one RGB PNG
per case, ``images<subset>/ISIC_NNNNNNN_0000.png``, read by nnU-Net's NaturalImage2DIO as
three channels (channel_names R, G, B; dataset.json ``overwrite_image_reader_writer``);
the mask ``labels<subset>/ISIC_NNNNNNN.png``, uint8 0 background / 1 lesion (raw masks
are 0/255; 0/1 masks are accepted too).

Splits (the peers' protocols):

- ``isic2016`` -> Dataset806_ISIC2016 (Zig-RiR): the official 900 training images in
  imagesTr, the official 379 test images in imagesTs/labelsTs.
- ``isic2017`` -> Dataset807_ISIC2017, ``isic2018`` -> Dataset808_ISIC2018 (VM-UNet): the
  labelled training + validation images (2150 / 2694) split 7:3 into train and test, with
  VM-UNet's sizes (1500/650, 1886/808) when all images are there, else round(0.7 n) train.
  The split is a seeded random permutation of the sorted image names
  (``numpy.random.default_rng(seed)``, default seed 12345, ``--seed``); VM-UNet published
  its split only as a download of the split images, so the exact membership is not
  reproducible from the paper: give a split file with ``--split`` to use a published one.
  The official test images (when their ground truth is there) go to
  imagesTs_official/labelsTs_official, so labelsTs stays exactly the 7:3 test part.
- ``--split FILE``: a JSON ``{"train": [...], "test": [...]}`` of image names
  (``ISIC_0000000``, extensions ignored), or a text file with one test image name per
  line (the other images of the pool are training images), e.g. a peer's ``test.txt``.
  The pool is training + validation (2017/2018) or training + test (2016).

``splits_final.json``: nnU-Net's seeded 5-fold CV over imagesTr (no test image is ever a
validation case). ``--resize H[xW]`` resizes every image (bilinear) and mask (bilinear, then
>= 0.5, as VM-UNet's evaluation thresholds its resized masks) to H x W pixels: VM-UNet uses
256x256 (ISIC 2017/2018), Zig-RiR 512x512 (ISIC 2016); without it the original sizes are kept.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sss_nnunet.datasets.common import Case, LabelMap
from sss_nnunet.datasets.specs import ISIC2016, ISIC2017, ISIC2018, DatasetSpec
from sss_nnunet.datasets.splits import cross_validation
from sss_nnunet.datasets.writer import Conversion
from sss_nnunet.errors import SSSError
from sss_nnunet.images import read_pil

IMAGE_NAME = re.compile(r"(ISIC_\d{7})\.jpe?g", flags=re.IGNORECASE)
DEFAULT_SEED = 12345
TRAIN_FRACTION = 0.7
OFFICIAL_TEST_SUBSET = "Ts_official"


@dataclass(frozen=True)
class Part:
    """One official image folder and its ground-truth folder."""

    images: str
    masks: str
    mask_suffix: str  # file name = image name + mask_suffix


@dataclass(frozen=True)
class Layout:
    spec: DatasetSpec
    pool: tuple[Part, ...]           # labelled images that are split (or train + test for 2016)
    official_test: Part | None       # held-out official test set (2017/2018)
    peer_sizes: dict[int, int]       # pool size -> number of test images of the peer's split
    peer: str


_S16, _S = "_Segmentation.png", "_segmentation.png"
ISIC2016_TRAIN = Part("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth", _S16)
ISIC2016_TEST = Part("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth", _S16)
LAYOUTS: dict[str, Layout] = {
    "isic2016": Layout(ISIC2016, (ISIC2016_TRAIN, ISIC2016_TEST), None, {}, "Zig-RiR"),
    "isic2017": Layout(
        ISIC2017,
        (Part("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", _S),
         Part("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", _S)),
        Part("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth", _S),
        {2150: 650}, "VM-UNet"),
    "isic2018": Layout(
        ISIC2018,
        (Part("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth", _S),
         Part("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth", _S)),
        Part("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth", _S),
        {2694: 808}, "VM-UNet"),
}


# ----------------------------------------------------------------------------- finding files
def find_folder(raw: Path, name: str) -> Path | None:
    """``raw/name`` or ``raw/*/name`` (the first in sorted order), else None."""
    if (raw / name).is_dir():
        return raw / name
    return next((p / name for p in sorted(raw.iterdir()) if p.is_dir() and (p / name).is_dir()), None)


def list_images(folder: Path) -> dict[str, Path]:
    """Image name (``ISIC_0000000``) -> JPEG file, for the ``ISIC_NNNNNNN.jpg`` files of ``folder``."""
    out = {}
    for p in sorted(folder.iterdir()):
        m = IMAGE_NAME.fullmatch(p.name)
        if m and p.is_file():
            out[m.group(1)] = p
    return out


def part_cases(raw: Path, part: Part, required: bool) -> dict[str, tuple[Path, Path]] | None:
    """Image name -> (image, expected mask) of one official part; None if absent and not required."""
    images, masks = find_folder(raw, part.images), find_folder(raw, part.masks)
    if images is None or masks is None:
        if not required:
            return None
        missing = part.images if images is None else part.masks
        raise SSSError(f"{raw}: folder {missing} not found (expected {raw / missing} as in the official archive)")
    found = list_images(images)
    if not found and required:
        raise SSSError(f"{images}: no ISIC_NNNNNNN.jpg images")
    return {name: (path, masks / f"{name}{part.mask_suffix}") for name, path in found.items()}


# ----------------------------------------------------------------------------- splits
def read_split_file(path: Path, pool: list[str]) -> tuple[list[str], list[str]]:
    """(train, test) names from a ``--split`` file (JSON train/test lists, or a text list of test names)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as e:
        raise SSSError(f"{path}: cannot read the split file ({e.strerror})") from None

    def names(values: object, where: str) -> list[str]:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SSSError(f"{path}: {where} must be a list of image names")
        return [Path(v.strip()).name.split(".")[0].removesuffix("_segmentation").removesuffix("_Segmentation")
                for v in values if v.strip()]

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise SSSError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not {"train", "test"} <= set(data):
            raise SSSError(f'{path}: expected a JSON object with "train" and "test" lists')
        train, test = names(data["train"], '"train"'), names(data["test"], '"test"')
    else:
        test = names(text.splitlines(), "the file")
        train = sorted(set(pool) - set(test))
    unknown = sorted((set(train) | set(test)) - set(pool))
    if unknown:
        raise SSSError(f"{path}: {len(unknown)} image(s) not in the download: {', '.join(unknown[:5])}"
                       + (" ..." if len(unknown) > 5 else ""))
    both = sorted(set(train) & set(test))
    if both:
        raise SSSError(f"{path}: {len(both)} image(s) both in train and test: {', '.join(both[:5])}")
    if not test:
        raise SSSError(f"{path}: no test images")
    return sorted(set(train)), sorted(set(test))


def random_split(names: list[str], n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, test): ``n_test`` names drawn by a seeded permutation of the sorted ``names``."""
    order = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(order))
    test = {order[i] for i in perm[:n_test]}
    return [n for n in order if n not in test], sorted(test)


def peer_test_size(layout: Layout, n: int) -> int:
    return layout.peer_sizes.get(n, n - round(TRAIN_FRACTION * n))


# ----------------------------------------------------------------------------- one case
def parse_size(text: str) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"256x320"`` -> (256, 320): (height, width) in pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(text))
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise SSSError(f"--resize must be SIZE or HEIGHTxWIDTH in pixels (e.g. 256 or 256x256), got {text!r}")
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) else h


def read_rgb(path: Path) -> np.ndarray:
    """An image as uint8 (H, W, 3)."""
    return read_pil(path, "RGB", what="image")


def read_mask(path: Path, image_shape: tuple[int, int], image_path: Path) -> np.ndarray:
    """A raw ISIC mask as uint8 (H, W) 0/1; checks size and values."""
    array = read_pil(path, what="mask")
    if array.ndim != 2:
        raise SSSError(f"{path}: expected a single-channel mask, found shape {array.shape}")
    if array.shape != image_shape:
        raise SSSError(f"{path}: mask size {array.shape[1]}x{array.shape[0]} (WxH) differs from "
                       f"{image_path.name} size {image_shape[1]}x{image_shape[0]}")
    values = np.unique(array).tolist()
    if set(values) <= {0, 255}:
        return (array == 255).astype(np.uint8)
    if set(values) <= {0, 1}:
        return array.astype(np.uint8)
    shown = values[:8] + (["..."] if len(values) > 8 else [])
    raise SSSError(f"{path}: not a binary mask: values {shown} (expected 0/255 or 0/1)")


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image bilinear; mask bilinear then >= 0.5. ``size`` = (height, width)."""
    from PIL import Image

    wh = (size[1], size[0])
    image = np.asarray(Image.fromarray(image).resize(wh, Image.Resampling.BILINEAR))
    soft = np.asarray(Image.fromarray(mask.astype(np.float32)).resize(wh, Image.Resampling.BILINEAR))
    return image, (soft >= 0.5).astype(np.uint8)


def write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", compress_level=3)


def convert_isic_case(case: Case, out_dir: Path, label_map: LabelMap, size: tuple[int, int] | None = None) -> str:
    """Read, check, (resize,) write one case: ``images<subset>/<id>_0000.png`` and ``labels<subset>/<id>.png``.

    ``label_map`` is unused (masks are checked for 0/255 or 0/1 and written as 0/1).
    """
    del label_map
    (image_path,) = case.images
    image = read_rgb(image_path)
    assert case.label is not None
    mask = read_mask(case.label, image.shape[:2], image_path)
    if size is not None:
        image, mask = resize_pair(image, mask, size)
    write_png(image, out_dir / f"images{case.subset}" / f"{case.identifier}_0000.png")
    write_png(mask, out_dir / f"labels{case.subset}" / f"{case.identifier}.png")
    return case.identifier


# ----------------------------------------------------------------------------- the dataset
def isic(key: str, raw: Path, split: Path | None = None, seed: int = DEFAULT_SEED,
         resize: tuple[int, int] | None = None) -> Conversion:
    """The ISIC dataset ``key`` (isic2016 | isic2017 | isic2018) from the official downloads in ``raw``."""
    layout = LAYOUTS[key]
    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise SSSError(f"{raw}: raw data folder not found")
    parts = [part_cases(raw, part, required=(i == 0 or key == "isic2016")) for i, part in enumerate(layout.pool)]
    notes = []
    if key != "isic2016" and parts[1] is None:
        notes.append(f"{layout.pool[1].images} / {layout.pool[1].masks} not found: the 7:3 split is over "
                     f"the training images only")
    pool: dict[str, tuple[Path, Path]] = {}
    for found in parts:
        for name, files in (found or {}).items():
            if name in pool:
                raise SSSError(f"{files[0]}: image {name} is also {pool[name][0]}: the same image in two "
                               f"parts of the download")
            pool[name] = files

    if split is not None:
        train, test = read_split_file(split, sorted(pool))
        how = f"split from {Path(split).name}"
        left_out = len(pool) - len(train) - len(test)
        if left_out:
            notes.append(f"{left_out} image(s) of the download are in neither part of {split}: not converted")
    elif key == "isic2016":
        train, test = sorted(parts[0]), sorted(parts[1])
        how = "official split"
    else:
        train, test = random_split(sorted(pool), peer_test_size(layout, len(pool)), seed)
        how = f"7:3 split, seed {seed}"
        if len(pool) not in layout.peer_sizes:
            notes.append(f"{len(pool)} labelled images (the peer's {layout.peer} split has "
                         f"{next(iter(layout.peer_sizes))}): split {len(train)}/{len(test)}")

    cases = [Case(n, (pool[n][0],), pool[n][1], "Tr") for n in train]
    cases += [Case(n, (pool[n][0],), pool[n][1], "Ts") for n in test]
    official = part_cases(raw, layout.official_test, required=False) if layout.official_test else None
    if official:
        cases += [Case(n, (i,), m, OFFICIAL_TEST_SUBSET) for n, (i, m) in sorted(official.items())]
    elif layout.official_test is not None:
        notes.append(f"official test set ({layout.official_test.images} with {layout.official_test.masks}) "
                     f"not found: imagesTs_official not written")
    size_text = f"resized to {resize[0]}x{resize[1]}" if resize else "original sizes"
    return Conversion(
        spec=layout.spec,
        cases=cases,
        label_map=LabelMap({0: 0, 1: 1}),
        make_splits=cross_validation,
        description=f"{layout.spec.name} skin lesion segmentation (RGB dermoscopy, lesion mask), "
                    f"{layout.peer} protocol: {how}, {len(train)} train / {len(test)} test; {size_text}; "
                    f"folds: seeded 5-fold CV over the training images",
        notes=notes,
        convert=functools.partial(convert_isic_case, size=resize) if resize else convert_isic_case,
    )
