"""One case: read its NIfTI files, check them, write them in nnU-Net layout.

A :class:`Case` names its raw files; :func:`convert_case` reads them with SimpleITK
(nnU-Net's default reader) through :func:`sss_nnunet.images.read_image` (fully decoded: a
truncated or corrupt file, NaN/Inf voxels are errors), checks everything that can go wrong
(sizes, spacing, origin and direction of image vs label), and only then writes

- ``images<subset>/<identifier>_<CCCC>.nii.gz``: one 3D file per channel ``CCCC``
  (4D files are split along their 4th axis, each channel keeping the 3D part of
  the geometry);
- ``labels<subset>/<identifier>.nii.gz``: the label mapped to consecutive values,
  cast to uint8, with the raw label's spacing, origin and direction.

3D ``.nii.gz`` images are copied byte for byte (geometry and pixel type exactly as
in the raw file); everything else is written by SimpleITK from the image as read.
Arrays are SimpleITK order ``(z, y, x)``; sizes in messages are ``(x, y, z)`` voxels,
spacings millimetres. Every problem raises :class:`~sss_nnunet.errors.SSSError`
naming the file.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sss_nnunet.errors import SSSError
from sss_nnunet.images import check_same_geometry, read_image, sitk_filename

FILE_ENDING = ".nii.gz"


@dataclass(frozen=True)
class LabelMap:
    """Raw label value -> converted value. A raw value not listed is an error."""

    mapping: Mapping[int, int]

    def lookup_table(self) -> np.ndarray:
        """uint8 array ``lut`` with ``lut[raw] == converted`` for every listed raw value."""
        lut = np.zeros(max(self.mapping) + 1, dtype=np.uint8)
        for raw, new in self.mapping.items():
            lut[raw] = new
        return lut


@dataclass(frozen=True)
class Case:
    """One nnU-Net case and the raw files it is made from.

    ``images`` are read in order; each must hold ``channels_per_file`` channels (1: a 3D
    file; more: a 4D file whose 4th axis is the channel). ``subset`` picks the output
    folders: ``"Tr"`` -> imagesTr/labelsTr, ``"Ts"`` -> imagesTs/labelsTs, any other
    ``X`` -> imagesX/labelsX.
    """

    identifier: str
    images: tuple[Path, ...]
    label: Path | None
    subset: str = "Tr"
    channels_per_file: int = 1

    @property
    def files(self) -> tuple[Path, ...]:
        return self.images + ((self.label,) if self.label is not None else ())

    def first_missing_file(self) -> Path | None:
        return next((f for f in self.files if not f.is_file()), None)


def split_channels(image: sitk.Image, channels: int, path: Path) -> list[sitk.Image]:
    """The 3D images of a file: itself (``channels == 1``) or the volumes along the 4th axis."""
    size = image.GetSize()
    if channels == 1:
        if image.GetDimension() != 3:
            raise SSSError(f"{path}: expected a 3D image, found {image.GetDimension()}D with size {size}")
        return [image]
    if image.GetDimension() != 4 or size[3] != channels:
        raise SSSError(
            f"{path}: expected a 4D image with {channels} channels along the 4th axis, "
            f"found {image.GetDimension()}D with size {size}"
        )
    array = sitk.GetArrayFromImage(image)  # (c, z, y, x)
    direction = np.asarray(image.GetDirection()).reshape(4, 4)[:3, :3]
    out = []
    for c in range(channels):
        vol = sitk.GetImageFromArray(array[c])
        vol.SetSpacing(image.GetSpacing()[:3])
        vol.SetOrigin(image.GetOrigin()[:3])
        vol.SetDirection(tuple(direction.ravel()))
        out.append(vol)
    return out


def map_labels(label: sitk.Image, label_map: LabelMap, path: Path) -> np.ndarray:
    """Converted label array ``(z, y, x)`` uint8; values outside ``label_map`` are an error."""
    array = sitk.GetArrayFromImage(label)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise SSSError(f"{path}: label values are not all integers (pixel type {array.dtype})")
    values = np.unique(array)
    bad = [v for v in values.tolist() if int(v) != v or int(v) not in label_map.mapping]
    if bad:
        raise SSSError(
            f"{path}: label values {bad} outside the expected set {sorted(label_map.mapping)}"
        )
    return label_map.lookup_table()[array.astype(np.int64)]


def output_paths(case: Case, out_dir: Path, n_channels: int) -> tuple[list[Path], Path]:
    """Image paths (one per channel) and the label path of ``case`` under ``out_dir``."""
    images = [out_dir / f"images{case.subset}" / f"{case.identifier}_{c:04d}{FILE_ENDING}"
              for c in range(n_channels)]
    return images, out_dir / f"labels{case.subset}" / f"{case.identifier}{FILE_ENDING}"


def convert_case(case: Case, out_dir: Path, label_map: LabelMap) -> str:
    """Check every file of ``case``, then write it under ``out_dir``; returns the identifier.

    Nothing is written for a case that fails a check.
    """
    label = read_image(case.label) if case.label is not None else None
    if label is not None:
        split_channels(label, 1, case.label)  # the label must be 3D
    channels: list[tuple[sitk.Image, Path]] = []
    for path in case.images:
        image = read_image(path)
        channels += [(vol, path) for vol in split_channels(image, case.channels_per_file, path)]
    ref, ref_path = (label, case.label) if label is not None else channels[0]
    for vol, path in channels:
        check_same_geometry(vol, path, ref, ref_path)
    converted = map_labels(label, label_map, case.label) if label is not None else None

    image_out, label_out = output_paths(case, out_dir, len(channels))
    for (vol, path), target in zip(channels, image_out):
        target.parent.mkdir(parents=True, exist_ok=True)
        if case.channels_per_file == 1 and path.name.endswith(FILE_ENDING):
            shutil.copyfile(path, target)
        else:
            sitk.WriteImage(vol, sitk_filename(target), useCompression=True)
    if converted is not None:
        out = sitk.GetImageFromArray(converted)
        out.CopyInformation(label)
        label_out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(out, sitk_filename(label_out), useCompression=True)
    return case.identifier


def locate_root(raw: Path, marker: str, candidates: tuple[str, ...], layout: str) -> Path:
    """The folder under ``raw`` (``raw`` itself or one of ``candidates``) that contains ``marker``.

    Lets ``--raw`` point at the extracted download or at the folder above it.
    """
    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise SSSError(f"{raw}: raw data folder not found")
    for sub in (".", *candidates):
        if (raw / sub / marker).exists():
            return (raw / sub).resolve()
    raise SSSError(f"{raw}: not the {layout} layout (expected {raw / marker})")
