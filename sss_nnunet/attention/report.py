"""The ``sss-nnunet attention`` pipeline: model -> preprocessed case -> query patch -> maps -> files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from sss_nnunet.attention import model as M
from sss_nnunet.attention import plots
from sss_nnunet.attention.maps import MixMap, attention_maps, stage_blocks
from sss_nnunet.errors import SSSError
from sss_nnunet.io import atomic_directory, atomic_write_text, check_output_dir

OWNER = "sss-nnunet attention"


def mean_distance_mm(m: np.ndarray, query: Sequence[int], spacing: Sequence[float]) -> float:
    """Weighted mean Euclidean distance (mm) of the map's mass from the query: the effective range."""
    grids = np.meshgrid(*(((np.arange(n) - q) * s) for n, q, s in zip(m.shape, query, spacing)), indexing="ij")
    dist = np.sqrt(sum(g ** 2 for g in grids))
    total = m.sum()
    return float((m * dist).sum() / total) if total > 0 else float("nan")


def set_scan(network: torch.nn.Module, mode: str) -> None:
    if not hasattr(network, "set_scan"):
        raise SSSError("--compare-scans: this network version cannot switch its scan (RWKVSSS.set_scan missing)")
    network.set_scan(mode)


def compute_report(dataset: str, trainer: str, plans: str, configuration: str, fold: str, image: list[Path],
                   voxel: list[int] | None, label: int | None, stages: list[int] | None, compare_scans: bool,
                   out: Path, device: torch.device, checkpoint: str = "checkpoint_final.pth",
                   log: Callable[[str], None] = print) -> list[Path]:
    """Everything ``sss-nnunet attention`` writes; returns the written paths."""
    for p in image:
        if not Path(p).is_file():
            raise SSSError(f"-i {p}: no such file")
    check_output_dir(out, **_output_rules(*image))  # before any work
    model = M.load_model(str(dataset), trainer, plans, configuration, str(fold), device, checkpoint)
    net = model.network
    stage_blocks(net)  # a model without Stage-Scan blocks: one clear error before any work
    files = M.input_files(model, image)
    log(f"model {model.folder.name} fold {fold} on {device}; preprocessing {Path(files[0]).name}")
    case = M.preprocess(model, files)
    source = str(image[0])
    if voxel is not None:
        img_q = M.check_voxel(case, list(voxel), source)
        pre_q, moved = M.image_to_preprocessed(model, case, img_q)
        if moved:
            img_q = M.preprocessed_to_image(model, case, pre_q)
            log(f"note: voxel {voxel} lies outside the non-zero region nnU-Net crops to; using {img_q}")
    elif label is not None:
        log(f"predicting {Path(files[0]).name} to find label {label}")
        pre_q = M.label_query(model, case, int(label))
        img_q = M.preprocessed_to_image(model, case, pre_q)
    else:
        pre_q = tuple(s // 2 for s in case.data.shape[1:])
        img_q = M.preprocessed_to_image(model, case, pre_q)
    patch = M.extract_patch(model, case, pre_q)
    log(f"query voxel {img_q} (image Z Y X) = {pre_q} (preprocessed) = {patch.query} in a "
        f"{'x'.join(str(s) for s in patch.tensor.shape[2:])} patch")
    dtype = next(net.parameters()).dtype
    x = patch.tensor.to(device=device, dtype=dtype)

    def run_maps(tag: str) -> list[MixMap]:
        return attention_maps(net, x, patch.query, stages, progress=lambda line: log(f"{tag}{line}"))

    maps = run_maps("")
    img_spacing = [float(s) for s in case.properties["spacing"]]
    patch_spacing = M.spacing_mm(model)
    written: list[Path] = []
    # built under a temporary name, then renamed: a rerun replaces the whole folder (no maps of other
    # stages left beside the new summary), a failure leaves the previous one as it was
    with atomic_directory(out, **_output_rules(*image, model.folder)) as tmp:
        def to_image(m: np.ndarray) -> np.ndarray:
            return M.preprocessed_to_image_map(model, case, M.patch_to_preprocessed(case, patch, m))

        def in_image(m: np.ndarray) -> float:
            """Weight on image voxels (the rest sits on the zero padding of a patch larger than the image)."""
            return float(M.patch_to_preprocessed(case, patch, m).sum())

        image_maps: dict[str, np.ndarray] = {}
        records = []
        for mm in maps:
            a = to_image(mm.weights)
            image_maps[mm.name] = a
            written.append(M.write_like_input(a, case, tmp / f"attention_{mm.name}.nii.gz"))
            written.append(M.write_like_input(to_image(mm.spread), case, tmp / f"attention_{mm.name}_spread.nii.gz"))
            col = mm.token_weights.sum(0)
            records.append(dict(
                stage=mm.stage, block=mm.block, mix=mm.mix, stage_grid=list(mm.stage_grid), v_grid=list(mm.v_grid),
                voxels_per_token=list(mm.factor), query_token=list(mm.query_token),
                weight_sum_per_channel=[float(col.min()), float(col.max())], weight_in_image=in_image(mm.weights),
                weight_on_query_token=float(mm.token_weights.reshape(*mm.v_grid, -1)[_v_query(mm)].mean()),
                mean_distance_mm=mean_distance_mm(mm.weights, patch.query, patch_spacing),
                channel_spread_mean=float(mm.token_weights.std(1).mean()),
            ))
        stages_done = sorted({mm.stage for mm in maps})
        for s in stages_done:
            stage_maps = {mm.name: image_maps[mm.name] for mm in maps if mm.stage == s}
            written.append(plots.stage_png(case.image, stage_maps, img_q, img_spacing,
                                           f"stage {s}: attention of voxel {img_q} ({Path(files[0]).name})",
                                           tmp / f"stage{s}.png"))
        rows, patch_rows = [], []
        for mm in maps:
            label_ = f"stage{mm.stage}b{mm.block}"
            if not rows or rows[-1][0] != label_:
                rows.append((label_, {}))
                patch_rows.append({})
            rows[-1][1][mm.mix] = image_maps[mm.name]
            patch_rows[-1][mm.mix] = mm.weights
        written.append(plots.summary_png(case.image, rows, img_q, img_spacing, patch_rows, patch.query, patch_spacing,
                                         f"{model.folder.parent.name} {model.folder.name} fold {fold}: voxel {img_q}",
                                         tmp / "summary.png"))
        summary = dict(image=files, model=str(model.folder), fold=str(fold), device=str(device),
                       query=dict(image=list(img_q), preprocessed=list(pre_q), patch=list(patch.query),
                                  slice=patch.slice_index),
                       patch_spacing_mm=list(patch_spacing), maps=records)
        if compare_scans:
            summary["compare_scans"] = _compare(net, run_maps, to_image, case, img_q, img_spacing, tmp, written,
                                                patch.query, patch_spacing, log)
        written.append(atomic_write_text(tmp / "summary.json", json.dumps(summary, indent=2) + "\n"))
    return [out / path.relative_to(tmp) for path in written]


def _output_rules(*inputs: Path) -> dict:
    """``-o`` may be replaced whole when this command wrote it (never a folder holding ``inputs``)."""
    return {"overwrite": True, "owner": OWNER, "legacy": _only_attention_outputs, "inputs": inputs}


def _only_attention_outputs(folder: Path) -> bool:
    """A folder written by this command before it named its writer: only its own file names."""
    names = {p.name for p in folder.iterdir()}
    return all(n in {"summary.json", "summary.png", "compare_scans.png", "scans"} or n.startswith("attention_")
               or re.fullmatch(r"stage\d+\.png", n) for n in names)


def _v_query(mm: MixMap) -> tuple[int, ...]:
    """The query token on the v grid (pooled grids: the cell holding the query token)."""
    if mm.v_grid == mm.stage_grid:
        return mm.query_token
    return tuple(q * v // s for q, v, s in zip(mm.query_token, mm.v_grid, mm.stage_grid))


def _compare(net, run_maps, to_image, case, img_q, img_spacing, out: Path, written: list[Path], patch_query,
             patch_spacing, log) -> dict:
    original = getattr(net, "config", {}).get("scan")
    table: dict[str, dict[str, np.ndarray]] = {}
    stats: dict[str, dict[str, float]] = {}
    try:
        for mode in ("raster", "zigzag", "stage"):
            set_scan(net, mode)
            log(f"scan {mode}:")
            table[mode], stats[mode] = {}, {}
            for mm in run_maps(f"  [{mode}] "):
                a = to_image(mm.weights)
                table[mode][mm.name] = a
                stats[mode][mm.name] = mean_distance_mm(mm.weights, patch_query, patch_spacing)
                written.append(M.write_like_input(a, case, out / "scans" / mode / f"attention_{mm.name}.nii.gz"))
    finally:
        if original is not None:
            set_scan(net, original)
    written.append(plots.compare_png(case.image, table, img_q, img_spacing,
                                     f"scan comparison: attention of voxel {img_q}", out / "compare_scans.png"))
    return {"mean_distance_mm": stats}
