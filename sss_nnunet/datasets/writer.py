"""Write a whole converted dataset: all-or-nothing, in parallel, with a progress bar.

:func:`write_dataset` takes the :class:`Conversion` a converter built and writes

- ``$nnUNet_raw/DatasetNNN_Name/``: imagesTr, labelsTr, imagesTs, labelsTs (plus any
  other subset a converter uses), ``dataset.json`` (nnU-Net v2 format, key order kept)
  and a copy of ``splits_final.json`` (nnU-Net 2.8 copies it to the preprocessed folder
  when planning if that one is missing);
- ``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json``: the folds nnUNetv2_train uses.

Every file is checked before anything is written; the dataset folder is built under a
temporary name and renamed only when complete, and the split (staged under a hidden name in
nnUNet_preprocessed) is renamed into place right after it, so a run that fails or is interrupted leaves both
folders as they were, and a new split never sits beside an old dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from sss_nnunet import __version__
from sss_nnunet.datasets.common import FILE_ENDING, Case, LabelMap, convert_case
from sss_nnunet.datasets.specs import DatasetSpec
from sss_nnunet.datasets.splits import Split, check_splits
from sss_nnunet.errors import SSSError
from sss_nnunet.images import sitk_filename
from sss_nnunet.io import atomic_directory, atomic_write_json, check_output_dir, nnunet_folder, remove_stale
from sss_nnunet.pools import run_in_pool

MAX_LISTED = 5  # missing files named in a message
OWNER = "sss-nnunet convert"  # the manifest name of the dataset folders it writes (sss_nnunet.io.OWNER_FILE)


@dataclass
class Conversion:
    """What a converter found in a raw download.

    ``cases`` are all cases the dataset should have (their files may be missing);
    ``missing`` are expected cases known to be absent before any case file is looked at
    (e.g. an ACDC patient without Info.cfg), as ``(name, expected file)``;
    ``make_splits`` maps the sorted identifiers of the training cases present to folds.
    """

    spec: DatasetSpec
    cases: list[Case]
    label_map: LabelMap
    make_splits: Callable[[list[str]], list[Split]]
    description: str
    missing: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # checks and writes one case: (case, out_dir, label_map) -> identifier, picklable (workers use
    # spawn); None = common.convert_case (NIfTI)
    convert: Callable[[Case, Path, LabelMap], str] | None = None


@dataclass
class Report:
    folder: Path
    split_file: Path
    counts: dict[str, int]              # subset ("Tr", "Ts", ...) -> number of cases written
    splits: list[Split]
    missing: list[tuple[str, Path]]
    notes: list[str]

    def summary(self) -> str:
        lines = [f"wrote {self.folder}"]
        lines += [f"  images{s}/labels{s}: {n} cases" for s, n in sorted(self.counts.items())]
        f0 = self.splits[0]
        lines.append(f"  split: {self.split_file} ({len(self.splits)} folds; "
                     f"fold 0: {len(f0['train'])} train / {len(f0['val'])} val)")
        if self.missing:
            lines.append(f"  --allow-missing: {len(self.missing)} expected case(s) not converted:")
            lines += [f"    {name}: {path} not found" for name, path in self.missing]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def regions_class_order(regions: dict[str, tuple[int, ...]]) -> list[int]:
    """Label value each region paints when regions are turned back into labels.

    Regions are nested, larger first (WT > TC > ET): region ``i`` paints the label that
    it contains and no later region contains, e.g. WT (1,2,3), TC (2,3), ET (3) -> [1, 2, 3].
    """
    order = []
    groups = list(regions.values())
    for i, values in enumerate(groups):
        own = set(values) - {v for later in groups[i + 1:] for v in later}
        if len(own) != 1:
            raise ValueError(f"regions {regions} are not nested")
        order.append(own.pop())
    return order


def dataset_json(spec: DatasetSpec, num_training: int, num_test: int, description: str) -> dict:
    """dataset.json as nnU-Net v2 writes it (write with ``sort_keys=False``)."""
    if spec.regions:
        labels = {"background": 0, **{name: list(v) for name, v in spec.regions.items()}}
    else:
        labels = {"background": 0, **{name: value for value, name in sorted(spec.labels.items())}}
    out = {
        "channel_names": dict(spec.channel_names),
        "labels": labels,
        "numTraining": num_training,
        "file_ending": spec.file_ending,
        "name": spec.folder_name,
        "description": description,
        "licence": "see the terms of the original challenge data",
        "converted_by": f"sss-nnunet convert {spec.key} (sss_nnunet {__version__})",
        "numTest": num_test,
    }
    if spec.regions:
        out["regions_class_order"] = regions_class_order(spec.regions)
    if spec.reader_writer:
        out["overwrite_image_reader_writer"] = spec.reader_writer
    return out


def is_raw_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds only what an nnU-Net raw dataset holds (dataset.json, images*/labels*,
    splits_final.json): a dataset converted before output manifests existed, safe to replace."""
    entries = [p.name for p in folder.iterdir()]
    return "dataset.json" in entries and all(
        n in ("dataset.json", "splits_final.json") or (n.startswith(("images", "labels")) and (folder / n).is_dir())
        for n in entries)


def write_dataset(conv: Conversion, *, dataset_id: int | None = None, overwrite: bool = False,
                  allow_missing: bool = False, workers: int = 1, inputs: tuple[Path | None, ...] = ()) -> Report:
    """Check and write ``conv`` to ``$nnUNet_raw`` and its split to ``$nnUNet_preprocessed``.

    ``inputs`` (the raw download, a split file) may not lie inside the dataset folder: --overwrite would
    delete them. An existing folder is replaced only when ``sss-nnunet convert`` wrote it.
    """
    assert conv.spec.file_ending == FILE_ENDING or conv.convert is not None
    spec = replace(conv.spec, dataset_id=dataset_id) if dataset_id is not None else conv.spec
    if not 1 <= spec.dataset_id <= 999:
        raise SSSError(f"dataset id {spec.dataset_id} is outside 1..999")
    raw_base, pre_base = nnunet_folder("nnUNet_raw"), nnunet_folder("nnUNet_preprocessed")
    target, split_file = raw_base / spec.folder_name, pre_base / spec.folder_name / "splits_final.json"
    _check_id_free(spec, raw_base, pre_base)
    if target.exists() and not overwrite:
        raise SSSError(f"{target} already exists (use --overwrite to replace it)")
    if conv.convert is None:
        sitk_filename(target)  # SimpleITK writes the NIfTI files: a name that is not UTF-8 would abort it
    owned = {"overwrite": overwrite, "owner": OWNER, "legacy": is_raw_dataset, "inputs": inputs}
    check_output_dir(target, **owned)
    remove_stale(pre_base, f"{spec.folder_name}.splits_final")
    present, missing = _present_cases(conv, allow_missing)
    training = sorted(c.identifier for c in present if c.subset == "Tr")
    if not training:
        raise SSSError(f"no training cases of {spec.folder_name} found")
    splits = conv.make_splits(training)
    check_splits(splits, training)
    if split_file.exists() and not overwrite and _load(split_file) != splits:
        raise SSSError(f"{split_file} exists with a different split (use --overwrite to replace it)")

    counts = {s: sum(c.subset == s for c in present) for s in {"Tr", "Ts"} | {c.subset for c in present}}
    notes = list(conv.notes)
    if any(p.name != "splits_final.json" for p in split_file.parent.glob("*")):
        notes.append(f"{split_file.parent} holds preprocessed data of an earlier conversion: re-run "
                     f"nnUNetv2_plan_and_preprocess -d {spec.dataset_id} --clean")
    # The split is staged under a hidden name in nnUNet_preprocessed itself (same file system) and moved
    # into DatasetNNN_Name/ only after the dataset folder is in place: an interrupted run leaves neither a
    # new split beside the old dataset nor a new (empty) preprocessed dataset folder nnU-Net would find.
    staged = pre_base / f".{spec.folder_name}.splits_final.{os.getpid()}.staged"
    try:
        atomic_write_json(staged, splits)
        with atomic_directory(target, **owned) as tmp:
            for subset in counts:
                (tmp / f"images{subset}").mkdir()
                (tmp / f"labels{subset}").mkdir()
            _convert_all(present, tmp, conv.label_map, workers, spec.folder_name, conv.convert or convert_case)
            atomic_write_json(tmp / "dataset.json",
                              dataset_json(spec, counts["Tr"], counts["Ts"], conv.description))
            atomic_write_json(tmp / "splits_final.json", splits)
        split_file.parent.mkdir(exist_ok=True)
        os.replace(staged, split_file)
    except FileExistsError as e:  # created by someone else meanwhile
        raise SSSError(str(e)) from None
    finally:
        staged.unlink(missing_ok=True)
    return Report(target, split_file, counts, splits, missing, notes)


def _present_cases(conv: Conversion, allow_missing: bool) -> tuple[list[Case], list[tuple[str, Path]]]:
    """The cases whose files all exist, and the missing ones (an error unless ``allow_missing``)."""
    ids = [c.identifier for c in conv.cases]
    assert len(ids) == len(set(ids)), "duplicate case identifiers"
    missing = list(conv.missing)
    present = []
    for case in conv.cases:
        absent = case.first_missing_file()
        if absent is None:
            present.append(case)
        else:
            missing.append((case.identifier, absent))
    if missing and not allow_missing:
        listed = "; ".join(f"{p} not found (case {n})" for n, p in missing[:MAX_LISTED])
        more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        raise SSSError(f"{listed}{more}. Use --allow-missing to convert only the cases present")
    return present, missing


def _convert_all(cases: list[Case], out_dir: Path, label_map: LabelMap, workers: int, name: str,
                 convert: Callable[[Case, Path, LabelMap], str]) -> None:
    """Run ``convert`` (e.g. :func:`convert_case`) on every case, in ``workers`` processes when > 1."""
    with tqdm(total=len(cases), desc=f"convert {name}", unit="case") as bar:
        if workers <= 1 or len(cases) <= 1:
            for case in cases:
                convert(case, out_dir, label_map)
                bar.update()
            return
        for _ in run_in_pool(convert, [(case, out_dir, label_map) for case in cases], workers):
            bar.update()


def _check_id_free(spec: DatasetSpec, *bases: Path) -> None:
    for base in bases:
        for other in sorted(base.glob(f"Dataset{spec.dataset_id:03d}_*")):
            if other.name != spec.folder_name:
                raise SSSError(f"{other} already uses dataset id {spec.dataset_id}; "
                               f"choose another id with -d ID")


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
