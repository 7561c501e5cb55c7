"""A trained model as nnU-Net's predictor loads it, one preprocessed case, the query patch, and the way
back from the preprocessed grid to the input image (nnU-Net's export: resample -> uncrop -> untranspose).

Voxel orders: ``image`` coordinates are NumPy indices of the image array as nnU-Net's reader returns it
(SimpleITK: Z, Y, X); ``preprocessed`` coordinates index nnU-Net's preprocessed array (transposed,
cropped to the non-zero region, resampled to the configuration's spacing).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sss_nnunet.errors import SSSError


@dataclass
class Model:
    predictor: object  # nnUNetPredictor
    folder: Path
    fold: str

    @property
    def network(self) -> torch.nn.Module:
        net = self.predictor.network
        return getattr(net, "_orig_mod", net)

    @property
    def dims(self) -> int:
        return len(self.predictor.configuration_manager.patch_size)


def load_model(dataset: str, trainer: str, plans: str, configuration: str, fold: str, device: torch.device,
               checkpoint: str = "checkpoint_final.pth") -> Model:
    """Plans, dataset.json and checkpoint through ``nnUNetPredictor.initialize_from_trained_model_folder``."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    try:
        folder = Path(get_output_folder(dataset, trainer, plans, configuration))
    except RuntimeError as e:
        raise SSSError(f"-d {dataset}: {str(e).splitlines()[0]}") from None
    if not folder.is_dir():
        raise SSSError(f"no trained model in {folder} (train it with: nnUNetv2_train {dataset} {configuration} "
                       f"{fold} -tr {trainer} -p {plans})")
    ckpt = folder / f"fold_{fold}" / checkpoint
    if not ckpt.is_file():
        raise SSSError(f"{ckpt} does not exist (fold {fold} not trained, or training not finished: use "
                       f"--checkpoint checkpoint_best.pth / checkpoint_latest.pth)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's trainer-class search prints every folder
            predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, device=device,
                                        perform_everything_on_device=device.type == "cuda", verbose=False,
                                        verbose_preprocessing=False, allow_tqdm=False)
            predictor.initialize_from_trained_model_folder(str(folder), (fold if fold == "all" else int(fold),),
                                                           checkpoint)
    except RuntimeError as e:
        raise SSSError(f"{ckpt}: cannot rebuild the model ({str(e).splitlines()[0]})") from None
    predictor.network.to(device).eval()
    return Model(predictor, folder, fold)


def input_files(model: Model, image: list[Path]) -> list[str]:
    """The case's channel files: as given, or the ``_0001``... siblings of a single ``_0000`` file."""
    dataset_json = model.predictor.dataset_json
    n = len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": ""})))
    ending = dataset_json["file_ending"]
    files = [Path(p) for p in image]
    for p in files:
        if not p.is_file():
            raise SSSError(f"-i {p}: no such file")
        if not p.name.endswith(ending):
            raise SSSError(f"-i {p}: the dataset's images end with {ending}")
    if len(files) == 1 and n > 1:
        m = re.fullmatch(rf"(.*)_0000{re.escape(ending)}", files[0].name)
        if m is None:
            raise SSSError(f"-i {files[0]}: the model needs {n} channels; give all files or name them CASE_0000"
                           f"{ending} ... CASE_{n - 1:04d}{ending}")
        files = [files[0].with_name(f"{m.group(1)}_{c:04d}{ending}") for c in range(n)]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise SSSError(f"-i {image[0]}: channel file(s) {', '.join(missing)} missing")
    if len(files) != n:
        raise SSSError(f"-i: the model needs {n} channel file(s), got {len(files)}")
    for c, p in enumerate(files):  # files named by channel must come in channel order
        m = re.fullmatch(rf".*_(\d{{4}}){re.escape(ending)}", p.name)
        if m is not None and int(m.group(1)) != c:
            raise SSSError(f"-i {p}: given as channel {c} but named for channel {int(m.group(1))}; list the "
                           f"files in channel order (_0000, _0001, ...)")
    return [str(p) for p in files]


@dataclass
class Case:
    """One preprocessed case: data (C, *pre_shape) and nnU-Net's properties of its preprocessing."""

    files: list[str]
    data: np.ndarray
    properties: dict
    image: np.ndarray  # first channel as read (image coordinates, 3 axes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)


def preprocess(model: Model, files: list[str]) -> Case:
    """nnU-Net's preprocessing of the configuration (the predictor's own preprocessor class)."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    p = model.predictor
    rw = p.plans_manager.image_reader_writer_class()
    if type(rw) is not SimpleITKIO:
        raise SSSError(f"{files[0]}: attention maps are written through SimpleITK; this dataset is read with "
                       f"{type(rw).__name__}")
    image, _ = rw.read_images(files[:1])
    preprocessor = p.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = preprocessor.run_case(files, None, p.plans_manager, p.configuration_manager, p.dataset_json)
    return Case(files, data, props, image[0])


# ------------------------------------------------------------------ image <-> preprocessed coordinates
def _geometry(model: Model, case: Case):
    tf = list(model.predictor.plans_manager.transpose_forward)
    bbox = [list(b) for b in case.properties["bbox_used_for_cropping"]]
    crop = np.asarray(case.properties["shape_after_cropping_and_before_resampling"], dtype=np.float64)
    pre = np.asarray(case.data.shape[1:], dtype=np.float64)
    return tf, bbox, crop, pre


def image_to_preprocessed(model: Model, case: Case, voxel: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """Preprocessed voxel of an image voxel (nearest), and whether it had to be moved into the cropped
    non-zero region."""
    tf, bbox, crop, pre = _geometry(model, case)
    t = np.asarray([voxel[a] for a in tf], dtype=np.float64)
    lo = np.asarray([b[0] for b in bbox], dtype=np.float64)
    c = t - lo
    moved = bool(np.any(c < 0) or np.any(c >= crop))
    c = np.clip(c, 0, crop - 1)
    q = np.floor((c + 0.5) * pre / crop).astype(int)
    return tuple(int(x) for x in np.clip(q, 0, pre - 1)), moved


def preprocessed_to_image(model: Model, case: Case, voxel: tuple[int, ...]) -> tuple[int, ...]:
    """Image voxel (nearest) of a preprocessed voxel."""
    tf, bbox, crop, pre = _geometry(model, case)
    lo = np.asarray([b[0] for b in bbox], dtype=np.float64)
    t = np.floor((np.asarray(voxel) + 0.5) * crop / pre) + lo
    out = [0] * len(tf)
    for a, axis in enumerate(tf):
        out[axis] = int(t[a])
    return tuple(out)


def check_voxel(case: Case, voxel: list[int], source: str) -> tuple[int, ...]:
    shape = case.image_shape
    if len(voxel) == 2 and shape[0] == 1:  # a 2D image: Y X
        voxel = [0, *voxel]
    if len(voxel) != len(shape):
        raise SSSError(f"--voxel needs {len(shape)} indices (Z Y X) for {source}, got {len(voxel)}")
    if any(not 0 <= v < s for v, s in zip(voxel, shape)):
        raise SSSError(f"--voxel {' '.join(map(str, voxel))} is outside the image {source} "
                       f"(shape {' x '.join(map(str, shape))}, Z Y X)")
    return tuple(int(v) for v in voxel)


def label_query(model: Model, case: Case, label: int) -> tuple[int, ...]:
    """Preprocessed voxel of label ``label`` in the model's prediction nearest to the label's centre of mass."""
    p = model.predictor
    labels = [int(x) for x in p.label_manager.foreground_labels]
    if label not in labels:
        raise SSSError(f"--label {label}: unknown label; the dataset's foreground labels are "
                       f"{', '.join(map(str, labels))} ({p.dataset_json.get('labels')})")
    with torch.no_grad():
        logits = p.predict_logits_from_preprocessed_data(torch.from_numpy(case.data)).cpu()
    seg = np.asarray(p.label_manager.convert_logits_to_segmentation(logits))
    where = np.argwhere(seg == label)
    if where.size == 0:
        raise SSSError(f"--label {label}: the model predicts no voxel of label {label} in {case.files[0]}")
    com = where.mean(0)
    return tuple(int(x) for x in where[np.argmin(((where - com) ** 2).sum(1))])


# ------------------------------------------------------------------ the patch
@dataclass
class Patch:
    """The network input around the query: tensor (1, C, *patch_size); ``start`` of the patch in the
    padded preprocessed array; ``pad`` added below each axis; ``query`` inside the patch; ``slice_index``
    the preprocessed slice of a 2D configuration (None in 3D)."""

    tensor: torch.Tensor
    start: tuple[int, ...]
    pad: tuple[int, ...]
    query: tuple[int, ...]
    slice_index: int | None


def extract_patch(model: Model, case: Case, pre_voxel: tuple[int, ...]) -> Patch:
    """The configuration's patch centred on the query (shifted to stay inside the image; images smaller
    than the patch are zero-padded symmetrically, as nnU-Net's sliding window does)."""
    ps = [int(x) for x in model.predictor.configuration_manager.patch_size]
    data = case.data
    slice_index = None
    q = list(pre_voxel)
    if len(ps) == 2:
        slice_index, q = q[0], q[1:]
        data = data[:, slice_index]
    shape = data.shape[1:]
    pad = [max(p - s, 0) // 2 for p, s in zip(ps, shape)]
    widths = [(0, 0)] + [(b, max(p - s, 0) - b) for b, p, s in zip(pad, ps, shape)]
    padded = np.pad(data, widths)
    start = [int(np.clip(c + b - p // 2, 0, n - p)) for c, b, p, n in zip(q, pad, ps, padded.shape[1:])]
    sl = (slice(None),) + tuple(slice(a, a + p) for a, p in zip(start, ps))
    tensor = torch.from_numpy(np.ascontiguousarray(padded[sl])).float()[None]
    query = tuple(c + b - a for c, b, a in zip(q, pad, start))
    return Patch(tensor, tuple(start), tuple(pad), query, slice_index)


def patch_to_preprocessed(case: Case, patch: Patch, m: np.ndarray) -> np.ndarray:
    """A patch-shaped map -> the preprocessed grid (zeros outside the patch)."""
    pre_shape = case.data.shape[1:]
    spatial = pre_shape[1:] if patch.slice_index is not None else pre_shape
    padded = [s + max(p - s, 0) for s, p in zip(spatial, m.shape)]
    full = np.zeros(padded, dtype=np.float64)
    full[tuple(slice(a, a + p) for a, p in zip(patch.start, m.shape))] = m
    full = full[tuple(slice(b, b + s) for b, s in zip(patch.pad, spatial))]
    if patch.slice_index is None:
        return full
    out = np.zeros(pre_shape, dtype=np.float64)
    out[patch.slice_index] = full
    return out


def preprocessed_to_image_map(model: Model, case: Case, m: np.ndarray) -> np.ndarray:
    """A map on the preprocessed grid -> the image grid, as nnU-Net exports predictions: resample
    (the configuration's probability resampling) to the cropped shape, put back into the uncropped
    image, undo the transpose. Negative interpolation overshoot is clipped and the total weight kept."""
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image

    p = model.predictor
    props = case.properties
    spacing_t = [props["spacing"][i] for i in p.plans_manager.transpose_forward]
    cfg_spacing = list(p.configuration_manager.spacing)
    current = cfg_spacing if len(cfg_spacing) == len(spacing_t) else [spacing_t[0], *cfg_spacing]
    crop_shape = props["shape_after_cropping_and_before_resampling"]
    total = float(m.sum())
    if tuple(m.shape) != tuple(crop_shape):
        r = p.configuration_manager.resampling_fn_probabilities(m[None].astype(np.float32), crop_shape, current,
                                                                 spacing_t)
        r = np.clip(np.asarray(r, dtype=np.float64)[0], 0, None)
        s = r.sum()
        m = r * (total / s) if s > 0 else r
    full = np.zeros(props["shape_before_cropping"], dtype=np.float64)
    full = insert_crop_into_image(full, m, props["bbox_used_for_cropping"])
    return np.ascontiguousarray(full.transpose(p.plans_manager.transpose_backward))


def write_like_input(arr: np.ndarray, case: Case, path: Path) -> Path:
    """Write a float32 map (image coordinates) with the input image's geometry (spacing, origin, direction)."""
    import SimpleITK as sitk

    from sss_nnunet.io import atomic_output

    st = case.properties["sitk_stuff"]
    a = arr.astype(np.float32)
    if len(st["spacing"]) == 2:
        a = a[0]
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(st["spacing"])
    img.SetOrigin(st["origin"])
    img.SetDirection(st["direction"])
    with atomic_output(path) as tmp:
        sitk.WriteImage(img, str(tmp), True)
    return path


def spacing_mm(model: Model) -> tuple[float, ...]:
    """Voxel size (mm) of the network input grid (the configuration's spacing)."""
    return tuple(float(x) for x in model.predictor.configuration_manager.spacing)


def patch_volume(model: Model) -> int:
    return math.prod(int(x) for x in model.predictor.configuration_manager.patch_size)
