"""Which data and code a comparison's runs come from: the data digest in the settings (identical
cases regenerated give the same digest, one changed voxel another), the code version in each run
record, and runs restored from an earlier compare.json (``--restore``)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from sss_nnunet.compare.budget import Budget
from sss_nnunet.compare.provenance import (
    code_version,
    data_digest,
    file_digest,
    finished_runs,
    restore_runs,
    settings_diff,
)
from sss_nnunet.compare.runner import SETTINGS_FILE, CompareSpec, Comparison
from sss_nnunet.errors import SSSError
from tests.trainers.tiny_dataset import write_tiny_dataset


def test_gzip_files_are_digested_by_their_content_not_their_time_stamp(tmp_path):
    a, b, c, plain = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", tmp_path / "c.nii.gz", tmp_path / "d.png"
    a.write_bytes(gzip.compress(b"voxels" * 100, mtime=1))
    b.write_bytes(gzip.compress(b"voxels" * 100, mtime=2, compresslevel=1))
    c.write_bytes(gzip.compress(b"voxelz" * 100, mtime=1))
    assert a.read_bytes() != b.read_bytes()
    assert file_digest(a) == file_digest(b) != file_digest(c)
    plain.write_bytes(b"\x89PNG same bytes")
    assert file_digest(plain).startswith("sha256:")
    (tmp_path / "e.nii.gz").write_bytes(b"not gzip at all")  # a broken .gz is digested by its bytes
    assert file_digest(tmp_path / "e.nii.gz").startswith("sha256:")


def test_data_digest_is_the_same_for_regenerated_cases_and_changes_with_any_case(tmp_path):
    one = write_tiny_dataset(tmp_path / "one", n_train=3, n_test=2)
    two = write_tiny_dataset(tmp_path / "two", n_train=3, n_test=2)
    assert data_digest(one) == data_digest(two)
    (two / "labelsTs" / ".DS_Store").write_bytes(b"x")  # hidden files do not count
    assert data_digest(one) == data_digest(two)
    other = write_tiny_dataset(tmp_path / "three", n_train=3, n_test=2, seed=1)
    assert data_digest(other) != data_digest(one)
    renamed = one / "imagesTr" / "tiny_000_0000.nii.gz"
    renamed.rename(renamed.with_name("tiny_100_0000.nii.gz"))
    assert data_digest(one) != data_digest(two)


def test_code_version_names_the_package_and_its_commit():
    text = code_version()
    repo = Path(__file__).resolve().parents[2]
    assert text.startswith("0.") or text == "unknown"
    if (repo / ".git").exists() and (Path(__import__("sss_nnunet").__file__).resolve().parents[1] == repo):
        assert re.fullmatch(r"[0-9][^+]*\+g[0-9a-f]{12}(\+dirty)?", text), text


def _spec(raw: Path, out: Path) -> CompareSpec:
    return CompareSpec(dataset_id=977, raw=raw, trainers=["nnUNetTrainer"], configuration="3d_fullres", fold="0",
                       plans="nnUNetPlans", budget=Budget.split(4, 2, 1), seeds=[0, 1], device="cpu", out=out)


def test_settings_written_before_the_digest_are_accepted_and_other_data_refused(tmp_path):
    raw = write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2)
    out = tmp_path / "out"
    spec = _spec(raw, out)
    old = {k: v for k, v in spec.settings().items() if k != "data"}
    out.mkdir()
    (out / SETTINGS_FILE).write_text(json.dumps(old))
    Comparison(spec, print_fn=lambda s: None).prepare()
    assert json.loads((out / SETTINGS_FILE).read_text())["data"] == data_digest(raw)
    write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2, seed=5)  # the same names, other cases
    with pytest.raises(SSSError, match="other settings.*data: the files of .*Dataset977_Tiny are not those"):
        Comparison(_spec(raw, out), print_fn=lambda s: None).prepare()


def _archive(path: Path, settings: dict, runs: list[dict]) -> Path:
    path.write_text(json.dumps({"settings": settings, "rows": [{"trainer": "T", "runs": runs}]}))
    return path


def test_restore_writes_back_the_finished_runs_only_where_none_exist(tmp_path):
    raw = write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2)
    settings = _spec(raw, tmp_path).settings()
    runs = [{"seed": 0, "status": "ok", "run_dir": "/gone/runs/seed0/T__sss", "summary": {"mean": {"dice": 0.5}}},
            {"seed": 1, "status": "ok", "run_dir": "/gone/runs/seed1/T__sss", "summary": {"mean": {"dice": 0.6}}},
            {"seed": 2, "status": "failed", "run_dir": "/gone/runs/seed2/T__sss"},
            {"seed": 3, "status": "ok", "run_dir": "/gone/runs/seed3/.."}]
    archive = _archive(tmp_path / "compare.json", settings, runs)
    out = tmp_path / "out"
    kept = out / "runs" / "seed1" / "T__sss" / "result.json"
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({"status": "ok", "mine": True}))
    assert restore_runs(archive, out, settings) == (1, "")
    assert json.loads((out / "runs" / "seed0" / "T__sss" / "result.json").read_text()) == runs[0]
    assert json.loads(kept.read_text()) == {"status": "ok", "mine": True}
    assert not (out / "runs" / "seed2").exists() and not (out / "runs" / "seed3").exists()
    assert restore_runs(archive, out, settings) == (0, "")


def test_restore_refuses_other_settings_or_data_and_notes_an_old_archive(tmp_path):
    raw = write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2)
    settings = _spec(raw, tmp_path).settings()
    run = {"seed": 0, "status": "ok", "run_dir": "/gone/runs/seed0/T"}
    other_budget = {**settings, "budget": {**settings["budget"], "iterations": 8}}
    with pytest.raises(SSSError, match="other settings .*budget"):
        restore_runs(_archive(tmp_path / "a.json", other_budget, [run]), tmp_path / "out", settings)
    with pytest.raises(SSSError, match="data 0123456789abcdef ->"):
        restore_runs(_archive(tmp_path / "b.json", {**settings, "data": "0123456789abcdef"}, [run]),
                     tmp_path / "out", settings)
    assert not (tmp_path / "out").exists()
    old = {k: v for k, v in settings.items() if k != "data"}
    n, note = restore_runs(_archive(tmp_path / "c.json", old, [run]), tmp_path / "out", settings)
    assert n == 1 and "predates data digests" in note
    for text, words in (("{", "cannot read it as JSON"), ("[1, 2]", "not a compare.json")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(SSSError, match=words):
            restore_runs(tmp_path / "bad.json", tmp_path / "out", settings)


def test_a_finished_run_of_another_comparison_is_refused_before_any_training(tmp_path):
    """A run folder copied in from a comparison with another budget (or seed, or row) would be
    skipped as done; prepare() names the file and the mismatch instead."""
    raw = write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2)
    spec = _spec(raw, tmp_path / "out")
    comparison = Comparison(spec, print_fn=lambda s: None)
    row = spec.rows[0]
    result = comparison.run_dir(row, 0) / "result.json"
    result.parent.mkdir(parents=True)
    budget = spec.settings()["budget"]
    mine = {"status": "ok", "seed": 0, "trainer": row.trainer, "plans": row.plans, "recipe": row.recipe,
            "stats": {"budget": dict(budget)}}
    for record, words in (
            (mine, None),
            ({**mine, "stats": {"budget": {**budget, "iterations": 2 * budget["iterations"]}}},
             f"budget iterations {2 * budget['iterations']}, this comparison {budget['iterations']}"),
            ({**mine, "seed": 1}, "seed 1, this comparison 0"),
            ({**mine, "trainer": "SSSTrainer"}, "trainer 'SSSTrainer', this comparison 'nnUNetTrainer'"),
            ({**mine, "status": "failed", "seed": 5}, None)):  # a failed run is redone anyway
        result.write_text(json.dumps(record))
        if words is None:
            comparison.prepare()
        else:
            with pytest.raises(SSSError, match=re.escape(f"{result}: a finished run of another comparison ({words})")):
                comparison.prepare()
    result.write_text('{"status": "ok", "se')
    with pytest.raises(SSSError, match="not a readable run record"):
        comparison.prepare()
    spec.overwrite = True  # --overwrite redoes every run: nothing to check
    Comparison(spec, print_fn=lambda s: None).prepare()


def test_settings_diff_names_every_key_that_differs_on_either_side():
    new = {"dataset": 991, "data": "abc", "budget": {"iterations": 500}}
    assert settings_diff(new, new) == ([], False)
    assert settings_diff({**new, "tta": True}, new) == (["tta True -> None"], False)
    diff, predates = settings_diff({"dataset": 990, "budget": {"iterations": 500}}, new)
    assert (diff, predates) == (["dataset 990 -> 991"], True)
    assert settings_diff({"dataset": 991, "data": "xyz", "budget": {"iterations": 8}}, new)[0] == \
        ["data xyz -> abc", "budget {'iterations': 8} -> {'iterations': 500}"]


def test_finished_runs_reads_folders_and_archives_and_counts_each_run_once(tmp_path):
    """A run folder's result.json, the same run in its compare.json and a ladder rung archive count once;
    failed runs not at all; the identity carries the dataset and iterations of the report it came from."""
    settings = {"dataset": "Dataset993_X", "budget": {"iterations": 250}}

    def run(trainer: str, seed: int, status: str = "ok") -> dict:
        return {"trainer": trainer, "plans": "nnUNetPlans", "recipe": "sss", "seed": seed, "status": status,
                "summary": {"cases": {}}}

    (tmp_path / "runs" / "seed0" / "A__sss").mkdir(parents=True)
    (tmp_path / "runs" / "seed0" / "A__sss" / "result.json").write_text(json.dumps(run("A", 0)))
    (tmp_path / "compare_settings.json").write_text(json.dumps(settings))
    (tmp_path / "compare.json").write_text(json.dumps(
        {"settings": settings, "rows": [{"runs": [run("A", 0), run("A", 1), run("A", 2, "failed")]}]}))
    (tmp_path / "rungs").mkdir()
    other = {"dataset": "Dataset993_X", "budget": {"iterations": 500}}
    (tmp_path / "rungs" / "L0.json").write_text(json.dumps(
        {"settings": other, "rows": [{"runs": [run("L0", 0), run("A", 1)]}]}))
    keys = [key for key, _ in finished_runs(tmp_path)]
    assert keys == [("Dataset993_X", iterations, trainer, "nnUNetPlans", "sss", seed)
                    for iterations, trainer, seed in ((250, "A", 0), (250, "A", 1), (500, "L0", 0), (500, "A", 1))]
    assert [key for key, _ in finished_runs(tmp_path / "rungs" / "L0.json")] == keys[2:]
    bad = tmp_path / "bad.json"
    for text, words in (('{"settings": {}, "ro', "cannot read it as JSON"), ("[1]", "holds a JSON list, not an object"),
                        ('{"settings": {}}', "not a compare.json of sss-nnunet compare"),
                        ('{"settings": {}, "rows": [{"runs": [3]}]}', "a run record that is not a JSON object")):
        bad.write_text(text)
        with pytest.raises(SSSError, match=re.escape(f"{bad}: {words}")):
            finished_runs(bad)
