"""Prediction / ground-truth folders: pairing by case name, geometry check, loading label maps.

Everything here raises ``SSSError`` naming the folder or case; nothing is written.
Arrays are returned in numpy order (D, H, W) (SimpleITK's x, y, z reversed), with the
voxel spacing in mm in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sss_nnunet.errors import SSSError
from sss_nnunet.images import read_image, sitk_filename

# Tolerances for "same geometry" (SimpleITK values, mm and direction cosines).
SPACING_RTOL, SPACING_ATOL = 1e-5, 1e-5
ORIGIN_RTOL, ORIGIN_ATOL = 1e-5, 1e-3
DIRECTION_ATOL = 1e-5
_LIST_LIMIT = 20


@dataclass(frozen=True)
class CasePair:
    case: str
    pred: Path
    gt: Path


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, ...]  # numpy order (D, H, W)
    spacing: tuple[float, ...]  # SimpleITK order (x, y, z), mm
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    components: int = 1

    def differences(self, other: Geometry) -> list[str]:
        """Human-readable differences to ``other`` (empty if equal within tolerance)."""
        out = []
        if self.shape != other.shape:
            out.append(f"shape {self.shape} vs {other.shape}")
            return out
        if self.components != other.components:
            out.append(f"components per voxel {self.components} vs {other.components}")
        if not np.allclose(self.spacing, other.spacing, rtol=SPACING_RTOL, atol=SPACING_ATOL):
            out.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)}")
        if not np.allclose(self.origin, other.origin, rtol=ORIGIN_RTOL, atol=ORIGIN_ATOL):
            out.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)}")
        if not np.allclose(self.direction, other.direction, rtol=0, atol=DIRECTION_ATOL):
            out.append(f"direction {_fmt(self.direction)} vs {_fmt(other.direction)}")
        return out


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_LIMIT])
    return shown + (f", ... ({len(names) - _LIST_LIMIT} more)" if len(names) > _LIST_LIMIT else "")


def list_cases(folder: Path, file_ending: str) -> dict[str, Path]:
    """Case name -> file for the image files of ``folder`` (other files, e.g. plans.json, are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SSSError(f"{folder}: not a folder")
    return {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.endswith(file_ending) and not p.name.startswith(".")
    }


def pair_cases(pred_dir: Path, gt_dir: Path, file_ending: str) -> list[CasePair]:
    """Pair files by identical case name; refuse missing or extra predictions, listing them."""
    preds, gts = list_cases(pred_dir, file_ending), list_cases(gt_dir, file_ending)
    if not gts:
        raise SSSError(f"{gt_dir}: no ground-truth files ending in {file_ending}")
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    problems = []
    if missing:
        problems.append(f"{len(missing)} case(s) missing from the predictions {pred_dir}: {_names(missing)}")
    if extra:
        problems.append(f"{len(extra)} prediction(s) without ground truth in {gt_dir}: {_names(extra)}")
    if problems:
        raise SSSError("prediction and ground-truth folders do not match:\n  " + "\n  ".join(problems))
    return [CasePair(c, preds[c], gts[c]) for c in sorted(gts)]


def read_geometry(path: Path) -> Geometry:
    """Geometry from the image header only (the voxels are not read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(sitk_filename(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise SSSError(f"{path}: cannot read the image header ({_reason(e)})") from None
    return Geometry(
        shape=tuple(int(s) for s in reversed(reader.GetSize())),
        spacing=tuple(reader.GetSpacing()),
        origin=tuple(reader.GetOrigin()),
        direction=tuple(reader.GetDirection()),
        components=int(reader.GetNumberOfComponents()),
    )


def check_geometry(pairs: list[CasePair]) -> None:
    """Refuse if any prediction's shape, spacing, origin or direction differs from its ground truth."""
    bad = []
    for pair in pairs:
        gt = read_geometry(pair.gt)
        pred = read_geometry(pair.pred)
        if gt.components != 1 or len(gt.shape) not in (2, 3):
            raise SSSError(
                f"{pair.gt}: expected a 2D or 3D label map, got shape {gt.shape} "
                f"with {gt.components} component(s) per voxel"
            )
        diffs = pred.differences(gt)
        if diffs:
            bad.append(f"{pair.case}: prediction vs ground truth: {'; '.join(diffs)}")
    if bad:
        raise SSSError(f"geometry mismatch in {len(bad)} case(s):\n  " + "\n  ".join(bad))


def load_label_map(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Label map as an integer array (D, H, W) or (H, W), and its spacing in mm in that order."""
    image = read_image(path)  # fully decoded: a truncated or corrupt file is an error, not zeros
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise SSSError(f"{path}: label map has non-integer values")
        array = rounded.astype(np.int32)
    return array, tuple(float(s) for s in reversed(image.GetSpacing()))


def _reason(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
