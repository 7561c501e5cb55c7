"""Read image files completely and check them, before anything is written.

One reader for every NIfTI / PNG / JPEG that ``convert`` and ``evaluate`` read:

- ``.nii.gz``: SimpleITK fills the voxels of a truncated file with zeros without a word. So
  the gzip stream is decoded here, once, into a temporary ``.nii`` (hidden, in the system's
  temporary folder, removed right after; one left by a killed process is removed by the next
  read), checking the gzip CRC and length and that the data covers the size the NIfTI header
  declares; SimpleITK then reads the decoded file. A ``.nii`` is checked against its header's size.
- every image: NaN or infinite voxels are an error (they become a NaN loss far from the cause).
  SimpleITK reads a NaN stored in a NIfTI file as 0, so NIfTI voxels are checked as stored.
- file names SimpleITK cannot take (not valid UTF-8: SimpleITK aborts the process) are an error.
- PNG / JPEG (Pillow): decoded completely with truncated-image loading off, whatever another
  library set.
- :func:`check_same_geometry`: size, spacing, origin and direction of two images (an image and
  its label), with the tolerances below (in the spirit of nnU-Net's verify_dataset_integrity,
  which uses ``np.allclose``; a flipped or shifted label is far outside them).

Every problem is one :class:`~sss_nnunet.errors.SSSError` naming the file. Sizes in messages are
SimpleITK's ``(x, y, z)`` voxels, spacings and origins millimetres.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sss_nnunet.errors import SSSError

SPACING_RTOL = 1e-4  # relative
ORIGIN_RTOL, ORIGIN_ATOL = 1e-5, 1e-3  # relative, mm
DIRECTION_ATOL = 1e-4  # direction cosines
DECODE_PREFIX = ".sss-nnunet-decode"
_CHUNK = 1 << 20
_cleaned = False


def sitk_filename(path: str | os.PathLike) -> str:
    """``str(path)`` for SimpleITK; a name that is not valid UTF-8 is an error (SimpleITK would abort)."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SSSError(f"{name!r}: the path is not valid UTF-8, which SimpleITK cannot open; rename the file "
                       f"or folder") from None
    return name


def sitk_reason(e: Exception, path: str | os.PathLike | None = None) -> str:
    """The useful last line of an ITK exception message."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or ["unknown error"]
    reason = lines[-1].split("ERROR:")[-1].strip()
    if path is not None:
        reason = reason.replace(f'for "{path}"', "").strip()
    return reason


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read and check an image file (see the module docstring); a missing file is an error too."""
    path = Path(path)
    if not path.is_file():
        raise SSSError(f"{path}: file not found")
    nifti = path.name.lower().endswith((".nii", ".nii.gz"))
    if nifti and _is_gzip(path):
        return _read_gzip_nifti(path)
    if nifti:
        _check_nifti_voxels(path, path.stat().st_size, path, decoded=False)
    image = _sitk_read(sitk_filename(path), path)
    if not nifti:
        check_finite(image, path)
    return image


def check_finite(image: sitk.Image, path: Path) -> None:
    """Floating-point voxels must all be finite. (SimpleITK reads NaN in a NIfTI file as 0: NIfTI files are
    checked on their stored voxels by :func:`read_image` instead.)"""
    if image.GetPixelID() in _FLOAT_TYPES:
        _finite(sitk.GetArrayViewFromImage(image), path)


def _finite(array: np.ndarray, path: Path) -> None:
    finite = np.isfinite(array)
    if not finite.all():
        nan = int(np.isnan(array).sum())
        raise SSSError(f"{path}: {nan} NaN and {finite.size - int(finite.sum()) - nan} infinite voxel value(s)")


def check_same_geometry(image: sitk.Image, path: Path, ref: sitk.Image, ref_path: Path) -> None:
    """Same size (exactly), spacing, origin and direction (tolerances above) as ``ref``."""
    if image.GetSize() != ref.GetSize():
        raise SSSError(f"{path}: size {image.GetSize()} differs from {ref_path} size {ref.GetSize()}")
    checks = (
        ("spacing", " mm", image.GetSpacing(), ref.GetSpacing(), SPACING_RTOL, 0.0),
        ("origin", " mm", image.GetOrigin(), ref.GetOrigin(), ORIGIN_RTOL, ORIGIN_ATOL),
        ("direction", "", image.GetDirection(), ref.GetDirection(), 0.0, DIRECTION_ATOL),
    )
    for what, unit, mine, theirs, rtol, atol in checks:
        if not np.allclose(mine, theirs, rtol=rtol, atol=atol):
            raise SSSError(f"{path}: {what} {fmt(mine)}{unit} differs from {ref_path} {what} {fmt(theirs)}{unit}"
                           + (" (a flipped or rotated label?)" if what == "direction" else ""))


def fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def read_pil(path: str | os.PathLike, mode: str | None = None, what: str = "image") -> np.ndarray:
    """A PNG / JPEG / ... fully decoded by Pillow as an array ((H, W) or (H, W, C)), converted to ``mode``."""
    from PIL import Image, ImageFile

    path = Path(path)
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert(mode) if mode is not None else im)
    except FileNotFoundError:
        raise SSSError(f"{path}: {what} not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise SSSError(f"{path}: unreadable {what} ({e})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


_FLOAT_TYPES = {sitk.sitkFloat32, sitk.sitkFloat64, sitk.sitkVectorFloat32, sitk.sitkVectorFloat64}


def _sitk_read(name: str, path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(name)
    except RuntimeError as e:
        kind = "NIfTI" if path.name.lower().endswith((".nii", ".nii.gz")) else "image"
        raise SSSError(f"{path}: unreadable {kind} file ({sitk_reason(e, name)})") from None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _truncated(path: Path, detail: str) -> SSSError:
    return SSSError(f"{path}: truncated file ({detail}; an interrupted copy or download?)")


def _read_gzip_nifti(path: Path) -> sitk.Image:
    """Decode ``path`` once into a temporary .nii (gzip CRC and length checked), read that with SimpleITK."""
    global _cleaned
    if not _cleaned:
        from sss_nnunet.io import remove_stale

        with contextlib.suppress(SSSError):
            remove_stale(Path(tempfile.gettempdir()), DECODE_PREFIX.lstrip("."), quiet=True, suffixes=(".nii",))
        _cleaned = True
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{DECODE_PREFIX}.{os.getpid()}.", suffix=".nii")
    except OSError as e:
        raise SSSError(f"{tempfile.gettempdir()}: cannot write the decoded copy of {path} there ({e.strerror}); "
                       f"set TMPDIR to a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            size = _gunzip(src, out, path)
        _check_nifti_voxels(tmp, size, path, decoded=True)
        return _sitk_read(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _gunzip(src, out, path: Path) -> int:
    """Decompress all gzip members of ``src`` into ``out``; returns the decoded length."""
    decoder, started, total = zlib.decompressobj(31), False, 0
    while chunk := src.read(_CHUNK):
        while chunk:
            if decoder.eof:
                if not chunk.strip(b"\0"):  # zero padding after the last member (gzip tolerates it)
                    break
                decoder, started = zlib.decompressobj(31), False
            try:
                data = decoder.decompress(chunk)
            except zlib.error as e:
                raise SSSError(f"{path}: corrupt gzip data ({e})") from None
            started = True
            out.write(data)
            total += len(data)
            chunk = decoder.unused_data if decoder.eof else b""
    if started and not decoder.eof:
        raise _truncated(path, "the gzip stream ends early")
    return total


@dataclass(frozen=True)
class _NiftiLayout:
    offset: int  # bytes before the voxels
    count: int  # voxels
    bitpix: int
    datatype: int
    endian: str

    @property
    def end(self) -> int:
        return self.offset + (self.count * self.bitpix + 7) // 8

    @property
    def float_dtype(self) -> np.dtype | None:
        kind = {16: "f4", 64: "f8", 32: "c8", 1792: "c16"}.get(self.datatype)
        return np.dtype(self.endian + kind) if kind else None


def _nifti_layout(head: bytes) -> _NiftiLayout | None:
    """Where a single-file NIfTI-1/2's voxels are, from its header; None if ``head`` is not such a header."""
    for e in "<>":
        if len(head) >= 348 and struct.unpack(f"{e}i", head[:4])[0] == 348 and head[344:347] == b"n+1":
            datatype, bitpix = struct.unpack(f"{e}2h", head[70:74])
            dims = struct.unpack(f"{e}8h", head[40:56])
            offset = int(struct.unpack(f"{e}f", head[108:112])[0])
        elif len(head) >= 540 and struct.unpack(f"{e}i", head[:4])[0] == 540 and head[4:7] == b"n+2":
            datatype, bitpix = struct.unpack(f"{e}2h", head[12:16])
            dims = struct.unpack(f"{e}8q", head[16:80])
            offset = struct.unpack(f"{e}q", head[168:176])[0]
        else:
            continue
        n = dims[0]
        if not 1 <= n <= 7 or any(d < 1 for d in dims[1:n + 1]) or bitpix < 1 or offset < 0:
            return None
        return _NiftiLayout(offset, int(np.prod(dims[1:n + 1], dtype=np.int64)), bitpix, datatype, e)
    return None


def _check_nifti_voxels(file: str | os.PathLike, size: int, path: Path, decoded: bool) -> None:
    """The voxel data of the NIfTI ``file`` (``size`` bytes) is complete and, for floats, finite."""
    with open(file, "rb") as f:
        layout = _nifti_layout(f.read(540))
    if layout is None:
        return
    if size < layout.end:
        raise _truncated(path, f"{size} bytes{' decoded' if decoded else ''}, the NIfTI header needs {layout.end}")
    dtype = layout.float_dtype
    if dtype is not None and layout.count:
        voxels = np.memmap(file, dtype=dtype, mode="r", offset=layout.offset, shape=(layout.count,))
        _finite(voxels, path)
        del voxels
