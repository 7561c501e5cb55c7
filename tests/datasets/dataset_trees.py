"""Miniature raw downloads in the exact real layouts (imported by the tests and conftest.py).

Volumes are tiny (4 x 4 x 3 voxels, x y z) with anisotropic spacing, a non-zero origin
and a rotated direction, so that geometry errors show. Every label file contains
every raw label value of its dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "paper_splits_public.json"


def published_splits() -> dict[str, dict[str, list[str]]]:
    """The papers' case lists as read from their public sources (tests/data/paper_splits_public.json,
    each list naming repository, path and commit), independent of the package's paper_splits.json:
    {dataset: {list name: sorted case ids}}."""
    data = json.loads(PUBLISHED.read_text())
    return {ds: {name: list(entry["cases"]) for name, entry in lists.items()}
            for ds, lists in data.items() if not ds.startswith("_")}


SHAPE = (3, 4, 4)                       # (z, y, x) voxels
SPACING = (0.78125, 0.78125, 2.5)       # (x, y, z) mm
ORIGIN = (-120.5, 95.25, 17.0)
_C, _S = math.cos(0.3), math.sin(0.3)
DIRECTION = (_C, -_S, 0.0, _S, _C, 0.0, 0.0, 0.0, -1.0)


def write_nifti(path: Path, array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=DIRECTION) -> Path:
    """Write ``array`` ((z, y, x) or (c, z, y, x) for 4D) with the given 3D geometry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array, isVector=False)
    if array.ndim == 4:
        spacing, origin = (*spacing, 1.0), (*origin, 0.0)
        d = np.eye(4)
        d[:3, :3] = np.reshape(direction, (3, 3))
        direction = tuple(d.ravel())
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def label_array(values: list[int], seed: int, shape=SHAPE) -> np.ndarray:
    """uint8 volume holding every one of ``values`` (shuffled by ``seed``)."""
    rng = np.random.default_rng(seed)
    flat = np.resize(np.asarray(values, dtype=np.uint8), int(np.prod(shape)))
    rng.shuffle(flat)
    return flat.reshape(shape)


def image_array(seed: int, dtype=np.int16, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(-100, 400, size=shape).astype(dtype)


# ---- raw trees -------------------------------------------------------------------------

def build_synapse(root: Path) -> Path:
    """``root/RawData/Training/{img,label}`` with the 30 labelled BTCV cases; returns RawData."""
    raw = root / "RawData"
    split = published_splits()["synapse"]
    for i, name in enumerate(sorted(split["train_18"] + split["test_12"])):
        number = name.removeprefix("img")
        write_nifti(raw / "Training" / "img" / f"img{number}.nii.gz", image_array(i))
        write_nifti(raw / "Training" / "label" / f"label{number}.nii.gz", label_array(list(range(14)), i))
    write_nifti(raw / "Testing" / "img" / "img0061.nii.gz", image_array(99))  # unlabelled, unused
    return raw


def acdc_frames() -> dict[str, tuple[int, int]]:
    """patient -> (ED, ES) frame numbers, read off the paper split names."""
    frames: dict[str, list[int]] = {}
    for part in ("nnformer_train_70pat", "nnformer_val_10pat", "test_20pat_40vol"):
        for name in published_splits()["acdc"][part]:
            patient, frame = name.split("_frame")
            frames.setdefault(patient, []).append(int(frame))
    return {p: (min(f), max(f)) for p, f in frames.items()}


def write_acdc_patient(folder: Path, ed: int, es: int, seed: int, gt: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.cfg").write_text(
        f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
    for k, frame in enumerate((ed, es)):
        stem = f"{folder.name}_frame{frame:02d}"
        write_nifti(folder / f"{stem}.nii.gz", image_array(seed + k, np.float32))
        if gt:
            write_nifti(folder / f"{stem}_gt.nii.gz", label_array([0, 1, 2, 3], seed + k))
    write_nifti(folder / f"{folder.name}_4d.nii.gz", np.zeros((2, *SHAPE), np.float32))  # ignored


def build_acdc(root: Path) -> Path:
    """``root/database/{training,testing}``: the 100 training patients, 3 labelled testing ones."""
    db = root / "database"
    for i, (patient, (ed, es)) in enumerate(sorted(acdc_frames().items())):
        write_acdc_patient(db / "training" / patient, ed, es, seed=2 * i)
    for j, patient in enumerate(("patient101", "patient102", "patient103")):
        write_acdc_patient(db / "testing" / patient, 1, 10 + j, seed=1000 + j)
    return db


def msd_image(seed: int) -> np.ndarray:
    """(4, z, y, x) float32; channel c is filled around 100 * c so channels are told apart."""
    base = np.random.default_rng(seed).random((4, *SHAPE), dtype=np.float32)
    return base + 100 * np.arange(4, dtype=np.float32)[:, None, None, None]


def build_brats_msd(root: Path) -> Path:
    """``root/Task01_BrainTumour`` with the 484 labelled cases (4D images)."""
    task = root / "Task01_BrainTumour"
    split = published_splits()["brats_msd_task01"]
    for i, name in enumerate(sorted(split["train_387"] + split["val_73"] + split["test_24"])):
        write_nifti(task / "imagesTr" / f"{name}.nii.gz", msd_image(i))
        write_nifti(task / "labelsTr" / f"{name}.nii.gz", label_array([0, 1, 2, 3], i))
    (task / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    write_nifti(task / "imagesTs" / "BRATS_485.nii.gz", msd_image(485))  # unlabelled, unused
    (task / "dataset.json").write_text('{"name": "BRATS"}')
    return task


BRATS2021_CASES = [f"BraTS2021_{n:05d}" for n in (0, 2, 3, 5, 6, 8, 9)]


def build_brats2021(root: Path) -> Path:
    """``root/RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021`` with 7 cases."""
    top = root / "RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021"
    for i, name in enumerate(BRATS2021_CASES):
        for c, modality in enumerate(("flair", "t1", "t1ce", "t2")):
            write_nifti(top / name / f"{name}_{modality}.nii.gz", image_array(10 * i + c) + 1000 * c)
        write_nifti(top / name / f"{name}_seg.nii.gz", label_array([0, 1, 2, 4], i))
    return top


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "synapse": build_synapse, "acdc": build_acdc, "brats_msd": build_brats_msd, "brats2021": build_brats2021,
}


def all_files(*folders: Path) -> list[Path]:
    """Every file and folder (hidden ones included) under ``folders``."""
    return sorted(p for f in folders if f.exists() for p in f.rglob("*"))


def assert_nothing_written(env: dict[str, Path]) -> None:
    leftovers = all_files(env["nnUNet_raw"], env["nnUNet_preprocessed"])
    assert leftovers == [], f"left behind: {leftovers}"


def assert_convert_fails(convert, env: dict[str, Path], args, expected_file, *words) -> str:
    """``convert(*args)`` exits 2 with one error line naming ``expected_file`` and ``words``, and
    writes nothing; returns stderr."""
    rc, out, err = convert(*map(str, args))
    assert rc == 2, out
    assert str(expected_file) in err, err
    for w in words:
        assert w in err, err
    assert err.count("error:") == 1
    assert_nothing_written(env)
    return err


def nnunet_splits(identifiers: list[str], group: Callable[[str], str] | None = None) -> list[dict]:
    """Independent reference for the converters' 5-fold CV: what ``nnUNetTrainer.do_split`` makes when
    there is no splits_final.json (nnU-Net's ``generate_crossval_split`` over the np.sort-ed identifiers,
    seed 12345). With ``group`` (ACDC patients), nnU-Net's split of the sorted groups, each fold then
    holding every case of its groups."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    if group is None:
        return [{k: [str(x) for x in v] for k, v in fold.items()}
                for fold in generate_crossval_split(list(np.sort(identifiers)), seed=12345, n_splits=5)]
    groups = list(np.sort(list({group(i) for i in identifiers})))
    folds = []
    for fold in generate_crossval_split(groups, seed=12345, n_splits=5):
        val = {str(g) for g in fold["val"]}
        folds.append({"train": sorted(i for i in identifiers if group(i) not in val),
                      "val": sorted(i for i in identifiers if group(i) in val)})
    return folds


# ---- checks on converted datasets ------------------------------------------------------

def read(path: Path) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def identifiers(folder: Path, channel_suffix: bool) -> list[str]:
    """Case names in an imagesXx (``_0000`` files) or labelsXx folder."""
    if channel_suffix:
        return sorted(p.name.removesuffix("_0000.nii.gz") for p in folder.glob("*_0000.nii.gz"))
    return sorted(p.name.removesuffix(".nii.gz") for p in folder.glob("*.nii.gz"))


def check_label(out: Path, raw: Path, mapping: dict[int, int]) -> None:
    """``out`` is ``raw`` mapped voxel by voxel, uint8, with the raw label's geometry."""
    out_arr, out_img = read(out)
    raw_arr, raw_img = read(raw)
    assert out_arr.dtype == np.uint8
    expected = np.vectorize(lambda v: mapping[int(v)], otypes=[np.uint8])(raw_arr)
    np.testing.assert_array_equal(out_arr, expected)
    assert geometry(out_img) == geometry(raw_img)


def check_image(out: Path, raw: Path) -> None:
    """``out`` has the voxels, pixel type and geometry of the 3D ``raw``."""
    out_arr, out_img = read(out)
    raw_arr, raw_img = read(raw)
    assert out_arr.dtype == raw_arr.dtype
    np.testing.assert_array_equal(out_arr, raw_arr)
    assert geometry(out_img) == geometry(raw_img)


def load_json(path: Path):
    return json.loads(path.read_text())
