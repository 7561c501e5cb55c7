"""A built-in synthetic multi-organ CT-like dataset for ``sss-nnunet demo``.

Each case is a miniature contrast-enhanced abdominal CT: air around a body ellipse with a
subcutaneous fat layer, an abdominal wall, a vertebral body and an aorta (not labelled),
bowel loops with gas pockets, and four labelled organs of different sizes and contrasts

=====  ============  ==========================  =====================================
label  organ         mean HU (random per case)   size (semi-axes, mm)
=====  ============  ==========================  =====================================
1      liver         105 +- 8                    about 26 (z) x 22 x 16, patient right
2      spleen        130 +- 8                    about 15 x 8 x 6, patient left, dorsal
3      kidneys       175 +- 12                   two, about 14 x 7 x 5, beside the spine
4      gallbladder   12 +- 6                     about 10 x 6 x 5, in a fossa of the liver
=====  ============  ==========================  =====================================

Both kidneys share one label: nnU-Net mirrors training patches left-right, so two identical
organs on either side can only be told apart by context, which a demo-length run does not
learn reliably (one of the two collapses); that would measure the augmentation, not the model.

Shapes are ellipsoids with a random in-plane tilt and a smooth random surface, positions
jitter per case; the image gets a slight blur (partial volume) and Gaussian noise
(sigma 12-20 HU), is clipped to [-1024, 3071] HU and stored as int16. Spacing is
anisotropic: z 3.4-4.0 mm, y = x 1.25-1.45 mm per case on a 24 x 48 x 48 grid (a miniature
abdomen: the body is about 6 cm wide, so that the whole demo trains on a CPU in minutes).

Arrays are (D, H, W) = (z, y, x) voxels as SimpleITK returns them; spacings are in mm and
given in the same (z, y, x) order. Every case is drawn from its own seeded generator, so a
case depends only on ``seed``, its subset and its index, not on how many cases are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from sss_nnunet.errors import SSSError
from sss_nnunet.images import sitk_filename
from sss_nnunet.io import atomic_directory, atomic_write_json

DEFAULT_ID = 990
DATASET_NAME = "SSSDemo"
FILE_ENDING = ".nii.gz"
SHAPE = (24, 48, 48)  # (D, H, W) voxels
HU_RANGE = (-1024, 3071)  # stored image values, HU
LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3, "gallbladder": 4}

# organ -> (mean HU, per-case HU jitter (uniform +-), semi-axes (z, y, x) in mm)
_ORGANS = {
    "liver": (105.0, 8.0, (26.0, 22.0, 16.0)),
    "spleen": (130.0, 8.0, (15.0, 8.0, 6.0)),
    "right_kidney": (175.0, 12.0, (14.0, 7.0, 5.0)),
    "left_kidney": (175.0, 12.0, (14.0, 7.0, 5.0)),
    "gallbladder": (12.0, 6.0, (10.0, 6.0, 5.0)),
}
# drawn organs that share a label
_LABEL_OF = {"right_kidney": "kidneys", "left_kidney": "kidneys"}
_FAT, _MUSCLE, _BOWEL, _GAS, _BONE, _BLOOD, _AIR = -100.0, 50.0, 35.0, -850.0, 650.0, 190.0, -1000.0


@dataclass(frozen=True)
class SyntheticCase:
    """One case. ``image``: int16 (D, H, W) in HU; ``label``: uint8 (D, H, W), values of ``LABELS``;
    ``spacing``: (z, y, x) in mm."""

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


def dataset_folder_name(dataset_id: int = DEFAULT_ID, kind: str = "ct") -> str:
    """``Dataset990_SSSDemo`` for id 990 (``kind="context"``: ``DatasetNNN_SSSContext``)."""
    return f"Dataset{dataset_id:03d}_{KINDS[kind]['name']}"


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]) -> np.ndarray:
    """Smooth random field (D, H, W) with unit standard deviation; ``sigma_vox`` in voxels per axis."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-8)


def _blob(coords: tuple[np.ndarray, ...], center_mm: np.ndarray, semi_mm: np.ndarray, tilt: float,
          surface: np.ndarray, roughness: float) -> np.ndarray:
    """Boolean (D, H, W) mask of a tilted ellipsoid whose surface is moved by ``roughness`` x ``surface``.

    ``coords`` are the (z, y, x) positions of the voxels in mm, ``center_mm`` and ``semi_mm``
    (z, y, x) in mm, ``tilt`` an in-plane rotation in radians.
    """
    z, y, x = (c - m for c, m in zip(coords, center_mm))
    cos, sin = np.cos(tilt), np.sin(tilt)
    yr, xr = cos * y + sin * x, -sin * y + cos * x
    r = np.sqrt((z / semi_mm[0]) ** 2 + (yr / semi_mm[1]) ** 2 + (xr / semi_mm[2]) ** 2)
    return r < 1.0 + roughness * surface


def make_case(seed: int, index: int, subset: str = "Tr", shape: tuple[int, int, int] = SHAPE) -> SyntheticCase:
    """Draw one case: image (D, H, W) int16 HU, label (D, H, W) uint8, spacing (z, y, x) mm.

    Deterministic in ``(seed, subset, index)``; ``subset`` is ``"Tr"`` or ``"Ts"`` (separate streams,
    so test cases never repeat training cases).
    """
    rng = np.random.default_rng([seed, {"Tr": 0, "Ts": 1}[subset], index])
    spacing = (float(rng.uniform(3.4, 4.0)), *([float(rng.uniform(1.25, 1.45))] * 2))
    sp = np.asarray(spacing)
    coords = tuple(
        ((np.arange(n) - (n - 1) / 2) * s).reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, s) in enumerate(zip(shape, spacing))
    )
    _, y, x = coords
    half = (np.asarray(shape) - 1) / 2 * sp  # half field of view (z, y, x), mm

    # body: an elliptic cylinder, fat under the skin, then a muscle wall
    by, bx = half[1] * rng.uniform(0.72, 0.82), half[2] * rng.uniform(0.86, 0.95)
    ell = np.broadcast_to(np.sqrt((y / by) ** 2 + (x / bx) ** 2), shape)
    hu = np.full(shape, _AIR)
    hu[ell < 1.0] = _FAT
    hu[ell < 0.88] = _MUSCLE
    cavity = ell < 0.80
    texture = _smooth_field(rng, shape, (1.0, 3.0, 3.0))
    hu[cavity] = -60.0 + 25.0 * texture[cavity]  # mesenteric fat
    bowel = cavity & (_smooth_field(rng, shape, (1.5, 3.0, 3.0)) > 0.6)
    hu[bowel] = _BOWEL
    hu[bowel & (_smooth_field(rng, shape, (0.8, 1.5, 1.5)) > 1.6)] = _GAS

    # spine and aorta (dorsal, +y is posterior in LPS)
    spine_y, spine_r = 0.62 * by, 0.16 * bx
    hu[np.broadcast_to((y - spine_y) ** 2 + x**2 < spine_r**2, shape)] = _BONE
    aorta_x, aorta_y, aorta_r = 0.1 * bx, spine_y - spine_r - 0.07 * bx, 0.065 * bx
    hu[np.broadcast_to((y - aorta_y) ** 2 + (x - aorta_x) ** 2 < aorta_r**2, shape)] = _BLOOD

    # organs: (z, y, x) centres in mm relative to the volume centre; -x is the patient's right
    scale = rng.uniform(0.9, 1.1)

    def jitter(mm: float) -> np.ndarray:
        return rng.uniform(-mm, mm, 3)

    centres = {
        "liver": np.array([0.18 * half[0], -0.05 * by, -0.42 * bx]) + jitter(3.0),
        "spleen": np.array([0.25 * half[0], 0.30 * by, 0.58 * bx]) + jitter(2.0),
        "right_kidney": np.array([-0.15 * half[0], 0.40 * by, -0.38 * bx]) + jitter(2.0),
        "left_kidney": np.array([-0.10 * half[0], 0.40 * by, 0.38 * bx]) + jitter(2.0),
    }
    liver_semi = np.asarray(_ORGANS["liver"][2]) * scale
    centres["gallbladder"] = centres["liver"] + np.array(  # mostly surrounded by liver
        [-0.45 * liver_semi[0], -0.30 * liver_semi[1], 0.30 * liver_semi[2]]) + jitter(1.5)

    label = np.zeros(shape, dtype=np.uint8)
    for name, (mean, spread, semi) in _ORGANS.items():
        semi_mm = np.asarray(semi) * scale * rng.uniform(0.9, 1.1, 3)
        surface = _smooth_field(rng, shape, tuple(np.maximum(8.0 / sp, 1.0)))
        mask = _blob(coords, centres[name], semi_mm, rng.uniform(-0.35, 0.35), surface, 0.12) & cavity
        organ_hu = mean + rng.uniform(-spread, spread)
        hu[mask] = organ_hu + 6.0 * texture[mask]
        label[mask] = LABELS[_LABEL_OF.get(name, name)]

    hu = ndimage.gaussian_filter(hu, (0.4, 0.6, 0.6))  # scanner blur / partial volume
    hu += rng.normal(0.0, rng.uniform(12.0, 20.0), shape)
    image = np.clip(np.rint(hu), *HU_RANGE).astype(np.int16)
    return SyntheticCase(image, label, spacing)


def _write_case(case: SyntheticCase, image_path: Path, label_path: Path) -> None:
    import SimpleITK as sitk

    for array, path in ((case.image, image_path), (case.label, label_path)):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(tuple(reversed(case.spacing)))  # SimpleITK wants (x, y, z)
        sitk.WriteImage(img, sitk_filename(path), useCompression=True)


def make_splits(identifiers: list[str], seed: int = 0) -> list[dict[str, list[str]]]:
    """min(5, n) cross-validation folds of the training ``identifiers`` (seeded, every case validated once)."""
    ids = sorted(identifiers)
    k = min(5, len(ids))
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    folds = [sorted(order[f::k]) for f in range(k)]
    return [{"train": sorted(set(ids) - set(val)), "val": val} for val in folds]


def write_synthetic_dataset(raw_root: str | Path, dataset_id: int = DEFAULT_ID, num_train: int = 20,
                            num_test: int = 6, seed: int = 0, overwrite: bool = False,
                            progress: bool = True, kind: str = "ct") -> Path:
    """Write the dataset to ``raw_root/DatasetNNN_SSSDemo`` in nnU-Net v2 raw layout; return that folder.

    Layout: ``imagesTr/train_000_0000.nii.gz``, ``labelsTr/train_000.nii.gz``, the same for
    ``imagesTs``/``labelsTs`` with ``test_000``, ``dataset.json`` (channel ``CT``, ``LABELS``) and
    ``splits_final.json`` (:func:`make_splits`; nnU-Net copies it when planning, so even 2-4 training
    cases train fold 0). Images are int16 HU, labels uint8, both (D, H, W) = ``SHAPE`` voxels with
    (z, y, x) spacing in mm. The folder is built under a temporary name and renamed when complete:
    an interrupted run leaves no half dataset. An existing folder is an ``SSSError`` unless ``overwrite``.
    ``kind="context"``: the long-range-context set of :mod:`sss_nnunet.datasets.synthetic_context`
    (``DatasetNNN_SSSContext``, channel ``MR``, its own shape and labels) in the same layout.
    """
    from tqdm import tqdm

    if not 1 <= dataset_id <= 999:
        raise SSSError(f"dataset id {dataset_id} is outside 1..999")
    if num_train < 2 or num_test < 1:
        raise SSSError(f"need at least 2 training and 1 test case, got {num_train} and {num_test}")
    if kind not in KINDS:
        raise SSSError(f"unknown synthetic dataset kind '{kind}' (choose from {', '.join(KINDS)})")
    spec = KINDS[kind]
    target = Path(raw_root) / dataset_folder_name(dataset_id, kind)
    others = [p.name for p in Path(raw_root).glob(f"Dataset{dataset_id:03d}_*") if p != target]
    if others:
        raise SSSError(f"{raw_root} already has {', '.join(others)} with id {dataset_id}; choose another id")
    if target.exists() and not overwrite:
        raise SSSError(f"{target} already exists (use --overwrite to replace it)")
    jobs = [("Tr", f"train_{i:03d}", i) for i in range(num_train)] + [("Ts", f"test_{i:03d}", i)
                                                                      for i in range(num_test)]
    from sss_nnunet.datasets.writer import OWNER, is_raw_dataset

    with atomic_directory(target, overwrite=overwrite, owner=OWNER, legacy=is_raw_dataset) as tmp:
        for sub in ("Tr", "Ts"):
            (tmp / f"images{sub}").mkdir()
            (tmp / f"labels{sub}").mkdir()
        for subset, name, index in tqdm(jobs, desc=f"generate {target.name}", unit="case", disable=not progress):
            case = spec["make_case"](seed, index, subset)
            _write_case(case, tmp / f"images{subset}" / f"{name}_0000{FILE_ENDING}",
                        tmp / f"labels{subset}" / f"{name}{FILE_ENDING}")
        atomic_write_json(tmp / "dataset.json", {
            "channel_names": {"0": spec["channel"]},
            "labels": spec["labels"],
            "numTraining": num_train,
            "file_ending": FILE_ENDING,
            "name": target.name,
            "description": f"{spec['description']} (seed {seed}, {num_test} test cases)",
            "numTest": num_test,
        })
        atomic_write_json(tmp / "splits_final.json", make_splits([n for s, n, _ in jobs if s == "Tr"], seed))
    return target


def _context_case(seed: int, index: int, subset: str = "Tr") -> SyntheticCase:
    from sss_nnunet.datasets.synthetic_context import make_context_case

    return make_context_case(seed, index, subset)


def _context2d_case(seed: int, index: int, subset: str = "Tr") -> SyntheticCase:
    from sss_nnunet.datasets.synthetic_context import make_context2d_case

    return make_context2d_case(seed, index, subset)


# kind -> folder name, generator, channel, labels, description
KINDS: dict[str, dict] = {
    "ct": {"name": DATASET_NAME, "make_case": make_case, "channel": "CT", "labels": LABELS,
           "description": "sss-nnunet synthetic CT-like multi-organ demo"},
    "context": {"name": "SSSContext", "make_case": _context_case, "channel": "MR",
                "labels": {"background": 0, "blob_shell": 1, "blob_solid": 2},
                "description": "sss-nnunet long-range-context set: the blobs' class is decided by a marker "
                               "45-60 mm away (hollow shell -> 1, solid ball -> 2)"},
    "context2d": {"name": "SSSContext2D", "make_case": _context2d_case, "channel": "MR",
                  "labels": {"background": 0, "blob_shell": 1, "blob_solid": 2},
                  "description": "sss-nnunet 2D long-range-context set (256 x 256 px, one slice): the blobs' class "
                                 "is decided by a marker 140-200 px away (hollow shell -> 1, solid disc -> 2)"},
}


def read_dataset_json(folder: str | Path) -> dict:
    """``folder/dataset.json`` as a dict."""
    return json.loads((Path(folder) / "dataset.json").read_text())
