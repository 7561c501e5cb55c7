"""Which classes to score for a dataset: label values (or BraTS-style regions) and their names.

``-d`` (dataset) is a key of ``sss_nnunet.datasets.specs.SPECS`` (synapse, btcv, acdc,
brats, brats2021) or an nnU-Net dataset (``801``, ``Dataset801``,
``Dataset801_Synapse8``) whose ``$nnUNet_raw/DatasetNNN_*/dataset.json`` gives the
labels. An nnU-Net dataset whose id or name and label values match a spec is
scored and tabulated as that spec (paper layout, published rows).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sss_nnunet.datasets.specs import SPECS, DatasetSpec
from sss_nnunet.errors import SSSError

# Column headers of the paper tables.
SHORT_NAMES: dict[str, str] = {
    "spleen": "Spl",
    "right_kidney": "RKid",
    "left_kidney": "LKid",
    "gallbladder": "Gal",
    "liver": "Liv",
    "stomach": "Sto",
    "aorta": "Aor",
    "pancreas": "Pan",
    "RV": "RV",
    "MLV": "Myo",
    "LVC": "LV",
}


@dataclass(frozen=True)
class EvalClass:
    key: str  # metrics.csv ``class``: the label value ("1") or region name ("WT")
    name: str  # long name ("spleen", "whole tumour" ...)
    short: str  # table header ("Spl")
    values: tuple[int, ...]  # label values whose union is this class


@dataclass(frozen=True)
class EvalTask:
    name: str  # dataset folder name, e.g. Dataset801_Synapse8
    kind: str  # spec key (table layout, published rows) or "generic"
    classes: tuple[EvalClass, ...]
    file_ending: str = ".nii.gz"

    @property
    def has_regions(self) -> bool:
        """Classes are named regions (WT/TC/ET ...) rather than single label values."""
        return any(not c.key.isdigit() for c in self.classes)

    @property
    def label_values(self) -> frozenset[int]:
        """Label values allowed in the files (background 0 included)."""
        return frozenset({0}.union(*(c.values for c in self.classes)))


def task_from_spec(spec: DatasetSpec) -> EvalTask:
    if spec.regions:
        classes = tuple(EvalClass(r, r, r, tuple(v)) for r, v in spec.regions.items())
    else:
        classes = tuple(EvalClass(str(v), n, SHORT_NAMES.get(n, n), (v,)) for v, n in spec.labels.items())
    return EvalTask(spec.folder_name, spec.key, classes, spec.file_ending)


def resolve_task(dataset: str) -> EvalTask:
    """``-d`` (dataset) value -> task (raises ``SSSError`` with the reason)."""
    key = dataset.strip().lower()
    if key in SPECS:
        return task_from_spec(SPECS[key])
    m = re.fullmatch(r"(?:dataset)?(\d{1,3})(_.+)?", dataset.strip(), flags=re.IGNORECASE)
    if not m:
        raise SSSError(
            f"unknown dataset {dataset!r}: use one of {', '.join(SPECS)}, an nnU-Net dataset id "
            "(801) or a dataset folder name (Dataset801_Synapse8)"
        )
    folder = find_raw_dataset(int(m.group(1)), dataset.strip() if m.group(2) else None)
    return task_from_dataset_json(folder)


def find_raw_dataset(dataset_id: int, full_name: str | None = None) -> Path:
    """``$nnUNet_raw/DatasetNNN_*`` for an id (exactly ``full_name`` if given)."""
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise SSSError(
            f"-d {full_name or dataset_id}: the environment variable nnUNet_raw is not set; "
            "export nnUNet_raw=/path/to/nnUNet_raw or use -d synapse|acdc|brats"
        )
    root = Path(raw)
    found = sorted(p for p in root.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
    if full_name is not None:
        found = [p for p in found if p.name.lower() == full_name.lower()]
    if not found:
        want = full_name or f"Dataset{dataset_id:03d}_*"
        raise SSSError(f"-d: no folder {want} in nnUNet_raw ({root})")
    if len(found) > 1:
        raise SSSError(
            f"-d {dataset_id}: several folders in nnUNet_raw match: {', '.join(p.name for p in found)}"
        )
    return found[0]


def task_from_dataset_json(folder: Path) -> EvalTask:
    """Classes from ``folder/dataset.json`` (nnU-Net v2: ``labels`` name -> value or list of values)."""
    path = folder / "dataset.json"
    try:
        info = json.loads(path.read_text())
        labels = info["labels"]
        if not isinstance(labels, dict):
            raise TypeError("'labels' is not a mapping")
    except FileNotFoundError:
        raise SSSError(f"{path}: not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SSSError(f"{path}: not a valid nnU-Net dataset.json ({e})") from None
    # nnU-Net region datasets list some labels as tuples (e.g. "enhancing_tumor": 3 beside
    # "whole_tumor": [1, 2, 3]); then every label is a region, named by its key.
    regions = "regions_class_order" in info or any(isinstance(v, list | tuple) for v in labels.values())
    classes = []
    for name, value in labels.items():
        values = tuple(value) if isinstance(value, list | tuple) else (value,)
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise SSSError(f"{path}: label {name!r} has invalid value {value!r}")
        if values == (0,) or name == "background":
            continue
        key = name if regions else str(values[0])
        classes.append(EvalClass(key, name, name, values))
    if not classes:
        raise SSSError(f"{path}: no foreground labels")
    dataset_id = int(folder.name[len("Dataset") : len("Dataset") + 3])
    task = EvalTask(folder.name, "generic", tuple(classes), info.get("file_ending", ".nii.gz"))
    return _match_spec(task, dataset_id) or task


def _match_spec(task: EvalTask, dataset_id: int) -> EvalTask | None:
    """The spec task for a dataset.json that is one of ours (same id or name, same label values)."""
    values = sorted(c.values for c in task.classes)
    for spec in SPECS.values():
        same_dataset = spec.dataset_id == dataset_id or task.name.endswith("_" + spec.name)
        spec_task = task_from_spec(spec)
        if same_dataset and sorted(c.values for c in spec_task.classes) == values:
            return EvalTask(task.name, spec.key, spec_task.classes, task.file_ending)
    return None
