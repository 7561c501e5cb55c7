"""Published numbers to print beside ours (package data ``published.json``, a copy of
``published_results.md``). Dice in %, HD95 as published (paper protocol, voxel units).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

# Tags that must be printed with a footnote (not confirmed from a primary source).
FOOTNOTE_TAGS = ("R", "V2", "U")


@dataclass(frozen=True)
class PublishedRow:
    method: str
    tag: str = ""  # "", "V", "R", "V2"
    dice: dict[str, float] = field(default_factory=dict)  # class key -> Dice %
    hd95: dict[str, float] = field(default_factory=dict)  # class key -> HD95
    dice_mean: float | None = None
    hd95_mean: float | None = None
    approximate: tuple[str, ...] = ()  # field names published as "~value"


@dataclass(frozen=True)
class PublishedTable:
    title: str
    source: str
    rows: tuple[PublishedRow, ...]
    notes: tuple[str, ...]
    tags: dict[str, str]  # tag -> meaning


@cache
def _data() -> dict:
    return json.loads(resources.files("sss_nnunet.evaluation").joinpath("published.json").read_text())


def published_entry(kind: str) -> dict | None:
    """The raw published.json table of ``kind`` (e.g. the ISIC tables, which have their own metrics)."""
    return _data()["tables"].get(kind)


def tag_meanings() -> dict[str, str]:
    return dict(_data()["tags"])


def published_table(kind: str) -> PublishedTable | None:
    """The published rows for a task kind (synapse, acdc, brats, btcv, brats2021), else ``None``."""
    data = _data()
    table = data["tables"].get(kind)
    if table is None:
        return None
    rows = tuple(
        PublishedRow(
            method=r["method"],
            tag=r.get("tag", ""),
            dice=dict(r.get("dice", {})),
            hd95=dict(r.get("hd95", {})),
            dice_mean=r.get("dice_mean"),
            hd95_mean=r.get("hd95_mean"),
            approximate=tuple(r.get("approximate", ())),
        )
        for r in table["rows"]
    )
    return PublishedTable(
        table["title"], table["source"], rows, tuple(table.get("notes", ())), dict(data["tags"])
    )
