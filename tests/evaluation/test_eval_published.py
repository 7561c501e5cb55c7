"""published.json (structured, used by the tables) agrees with published_results.md (the copy of record)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from sss_nnunet.evaluation.published import FOOTNOTE_TAGS, published_table

MD = resources.files("sss_nnunet.evaluation").joinpath("published_results.md").read_text()


def md_table(heading_start: str) -> list[list[str]]:
    """Rows (cells) of the first Markdown table after the heading that starts with ``heading_start``."""
    section = MD.split("\n## " + heading_start, 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()[1:]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    block = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        block.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return block[2:]  # without the header and the separator


def split_tag(method: str) -> tuple[str, str]:
    m = re.fullmatch(r"(.*?)\s*\[(\w+)\]", method)
    return (m.group(1), m.group(2)) if m else (method, "")


def test_synapse_rows_match_markdown():
    table = published_table("synapse")
    md = {split_tag(r[0])[0]: r for r in md_table("Synapse")}
    organs = [str(v) for v in range(1, 9)]
    rows = [r for r in table.rows if r.dice]
    assert [r.method for r in rows] == list(md)
    for row in rows:
        cells = md[row.method]
        assert split_tag(cells[0])[1] in (row.tag, "")
        assert [row.dice[k] for k in organs] == [float(c) for c in cells[3:11]]
        assert (row.hd95_mean, row.dice_mean) == (float(cells[11]), float(cells[12]))
    assert {r.method: r.tag for r in rows}["nnU-Net"] == "R"
    rwkv = next(r for r in table.rows if r.method.startswith("RWKV-UNet"))
    assert "RWKV-UNet (2D, TransUNet pipeline) Base: DSC 84.02, HD95 15.70" in MD
    assert (rwkv.dice_mean, rwkv.hd95_mean) == (84.02, 15.70)


def test_acdc_rows_match_markdown():
    table = published_table("acdc")
    md = md_table("ACDC")
    assert len(md) == len(table.rows)
    for row, cells in zip(table.rows, md):
        name, tag = split_tag(cells[0])
        assert (row.method, row.tag) == (name, tag)
        assert [row.dice[k] for k in ("1", "2", "3")] + [row.dice_mean] == [float(c) for c in cells[1:5]]


@pytest.mark.parametrize(("kind", "column"), [("btcv", 1), ("brats2021", 3)])
def test_revisited_rows_match_markdown(kind, column):
    md = md_table("nnU-Net Revisited")
    table = published_table(kind)
    assert [(r.method, r.dice_mean) for r in table.rows] == [(c[0], float(c[column])) for c in md]


def test_brats_and_tags():
    row = published_table("brats").rows[0]
    assert "nnFormer [R]: ET 81.8, TC 86.0, WT 91.3, avg 86.4, HD95 ~4.05" in MD
    assert (row.method, row.tag, row.dice, row.dice_mean, row.hd95_mean) == (
        "nnFormer",
        "R",
        {"WT": 91.3, "TC": 86.0, "ET": 81.8},
        86.4,
        4.05,
    )
    assert row.approximate == ("hd95_mean",)
    assert set(FOOTNOTE_TAGS) <= set(published_table("synapse").tags)
    assert published_table("generic") is None
