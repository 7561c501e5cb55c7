"""Real MR images with labels that ship inside a package: the MNI ICBM152 2009a template in nilearn.

Source: the PyPI package ``nilearn`` (BSD-3-Clause) ships, in ``nilearn/datasets/data/``, the
skull-stripped T1-weighted ICBM152 non-linear symmetric 2009a template and its grey- and
white-matter probability maps (1 mm, 197 x 233 x 189, rescaled to uint8):

    mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz
    mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz
    mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz

The template is the non-linear average of T1-weighted MR scans of 152 young adults (ICBM,
Montreal Neurological Institute; Fonov et al., NeuroImage 2011); the tissue maps are the averages
of those subjects' tissue classifications, brought into the template space by the same non-linear
registration. Licence of the template (MNI/McGill): free use, copying and distribution with the
copyright notice (Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, MNI,
McGill University). Nothing is downloaded: the files are read from the installed package (or
from ``--raw``, a folder holding the three files, e.g. extracted from the nilearn wheel).

Labels (how they are made here): at each voxel the argmax of (rest = 1 - GM - WM, GM, WM)
probabilities -> 0 background/CSF, 1 grey matter, 2 white matter.

Cases: there is ONE real template, so every case ("subject") is the template under its own random
smooth deformation (rotation up to 8 degrees, scaling 0.9-1.1 per axis, a smooth displacement field
of up to ~5 mm), MR bias field (+-15 %), contrast (gamma 0.8-1.25) and noise (1-4 % of the range);
training and test cases come from separate random streams. The test cases therefore check
segmentation of real MR anatomy and contrast under shape and intensity variation, NOT
generalisation to other people's anatomy: every case shares the one underlying brain.

Grid: resampled to ``spacing`` mm (default 4 mm, 36 x 44 x 36 voxels after cropping to the brain,
so that a CPU trains in minutes); arrays (D, H, W) = (z, y, x), spacing in mm.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from scipy import ndimage

from sss_nnunet.errors import SSSError

DATASET_ID = 992
DATASET_NAME = "MNI152Tissue"
FILES = {key: f"mni_icbm152_{key}_tal_nlin_sym_09a_converted.nii.gz" for key in ("t1", "gm", "wm")}
LABELS = {"background": 0, "grey_matter": 1, "white_matter": 2}
FILE_ENDING = ".nii.gz"


def nilearn_data_dir() -> Path | None:
    """``nilearn/datasets/data`` of the installed nilearn (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("nilearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def source_files(raw: Path | None) -> dict[str, Path]:
    """The three source files in ``raw`` (default: the installed nilearn); ``SSSError`` naming what is missing."""
    folder = raw if raw is not None else nilearn_data_dir()
    if folder is None:
        raise SSSError("mni152 reads the ICBM152 template shipped in the nilearn package: install it with "
                       "pip install '.[datasets]' in the sss-nnunet folder (or pip install nilearn), or pass "
                       "--raw DIR with the three mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz files")
    files = {k: Path(folder) / name for k, name in FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise SSSError(f"missing {', '.join(missing)}")
    return files


def load_template(files: dict[str, Path], spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T1 (0..1) and GM, WM probabilities (0..1), each (D, H, W) at ``spacing`` mm, cropped to the brain
    with a 2-voxel margin."""
    import SimpleITK as sitk

    from sss_nnunet.images import read_image

    arrays = {}
    ref_spacing = None
    for key, path in files.items():
        img = read_image(path)
        a = sitk.GetArrayFromImage(img).astype(np.float32) / 255.0
        sp = np.asarray(img.GetSpacing()[::-1], float)  # (z, y, x) mm
        if ref_spacing is None:
            ref_spacing, shape = sp, a.shape
        elif a.shape != shape or not np.allclose(sp, ref_spacing):
            raise SSSError(f"{path}: grid {a.shape} at {tuple(sp)} mm differs from {files['t1']}'s")
        factor = sp / spacing
        a = ndimage.gaussian_filter(a, np.maximum(0.0, (1 / factor - 1) / 2))  # anti-aliasing
        arrays[key] = np.clip(ndimage.zoom(a, factor, order=1), 0.0, 1.0)
    brain = (arrays["gm"] + arrays["wm"]) > 0.05
    if not brain.any():
        raise SSSError(f"{files['gm']} and {files['wm']} contain no tissue")
    box = tuple(slice(max(0, int(i.min()) - 2), int(i.max()) + 3) for i in np.nonzero(brain))
    return arrays["t1"][box], arrays["gm"][box], arrays["wm"][box]


def tissue_labels(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """uint8 (D, H, W): argmax of (1 - GM - WM, GM, WM) -> 0, 1, 2."""
    rest = np.clip(1.0 - gm - wm, 0.0, 1.0)
    return np.argmax(np.stack([rest, gm, wm]), axis=0).astype(np.uint8)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return f / (np.abs(f).max() + 1e-8)


def make_subject(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, spacing: float, seed: int, subset: str,
                 index: int) -> tuple[np.ndarray, np.ndarray]:
    """One deformed case: image int16 (D, H, W) in 0..1000 and labels uint8 (D, H, W) (module docstring)."""
    rng = np.random.default_rng([seed, {"Tr": 0, "Ts": 1}[subset], index, 152])
    shape = t1.shape
    centre = (np.asarray(shape) - 1) / 2
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    angles = np.deg2rad(rng.uniform(-8, 8, 3))
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i] = r[j, j] = np.cos(angle)
        r[i, j], r[j, i] = -np.sin(angle), np.sin(angle)
        rot = rot @ r
    matrix = rot @ np.diag(1.0 / rng.uniform(0.9, 1.1, 3))  # output -> input
    coords = np.tensordot(matrix, grid - centre[:, None, None, None], axes=1) + centre[:, None, None, None]
    sigma = 12.0 / spacing
    coords += np.stack([_smooth(rng, shape, sigma) for _ in range(3)]) * (5.0 / spacing)
    warped = [ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0) for a in (t1, gm, wm)]
    image, g, w = warped
    label = tissue_labels(g, w)
    bias = np.exp(0.15 * _smooth(rng, shape, 20.0 / spacing))
    image = np.clip(image * bias, 0.0, None) ** rng.uniform(0.8, 1.25)
    image = image + rng.normal(0.0, rng.uniform(0.01, 0.04), shape)
    return np.clip(np.rint(1000.0 * image), -100, 2000).astype(np.int16), label


def write_mni_tissue_dataset(raw_root: str | Path, raw: Path | None = None, dataset_id: int = DATASET_ID,
                             num_train: int = 20, num_test: int = 5, seed: int = 0, spacing: float = 4.0,
                             overwrite: bool = False) -> Path:
    """``raw_root/DatasetNNN_MNI152Tissue`` in nnU-Net raw layout (imagesTs/labelsTs = test cases); returns it."""
    import SimpleITK as sitk

    from sss_nnunet.images import sitk_filename
    from sss_nnunet.io import atomic_directory, atomic_write_json, check_output_dir

    if num_train < 2 or num_test < 1:
        raise SSSError(f"need at least 2 training and 1 test case, got {num_train} and {num_test}")
    if not 0.5 <= spacing <= 8:
        raise SSSError(f"--spacing {spacing} mm is outside 0.5..8")
    files = source_files(raw)
    target = Path(raw_root) / f"Dataset{dataset_id:03d}_{DATASET_NAME}"
    if target.exists() and not overwrite:
        raise SSSError(f"{target} already exists (use --overwrite to replace it)")
    others = [p.name for p in Path(raw_root).glob(f"Dataset{dataset_id:03d}_*") if p != target]
    if others:
        raise SSSError(f"{raw_root} already has {', '.join(others)} with id {dataset_id}; choose another id with -d ID")
    from sss_nnunet.datasets.writer import OWNER, is_raw_dataset

    owned = {"overwrite": overwrite, "owner": OWNER, "legacy": is_raw_dataset, "inputs": (raw,)}
    check_output_dir(target, **owned)
    t1, gm, wm = load_template(files, spacing)
    with atomic_directory(target, **owned) as tmp:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (tmp / sub).mkdir()
        jobs = [("Tr", i) for i in range(num_train)] + [("Ts", i) for i in range(num_test)]
        for subset, i in jobs:
            name = f"{'train' if subset == 'Tr' else 'test'}_{i:03d}"
            image, label = make_subject(t1, gm, wm, spacing, seed, subset, i)
            for array, path in ((image, tmp / f"images{subset}" / f"{name}_0000{FILE_ENDING}"),
                                (label, tmp / f"labels{subset}" / f"{name}{FILE_ENDING}")):
                img = sitk.GetImageFromArray(array)
                img.SetSpacing((spacing,) * 3)
                sitk.WriteImage(img, sitk_filename(path), useCompression=True)
        atomic_write_json(tmp / "dataset.json", {
            "channel_names": {"0": "T1"}, "labels": LABELS, "numTraining": num_train, "file_ending": FILE_ENDING,
            "name": target.name, "numTest": num_test,
            "description": "ICBM152 2009a symmetric T1 template and tissue maps (shipped in nilearn), one random "
                           f"deformation + bias + noise per case, {spacing} mm; labels argmax(rest, GM, WM); "
                           f"seed {seed}. All cases share one underlying brain.",
            "reference": "Fonov et al., NeuroImage 54(1) 2011; files from the nilearn package",
            "licence": "ICBM152 2009: free use with the MNI/McGill copyright notice; nilearn BSD-3-Clause",
        })
    return target
