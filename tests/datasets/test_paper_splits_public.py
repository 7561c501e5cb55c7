"""The package's paper case lists (sss_nnunet/datasets/paper_splits.json) against the lists read from the
papers' public code (tests/data/paper_splits_public.json: UNETR++ and nnFormer trainers' ``do_split`` and
nnFormer's dataset_json files, each naming repository, path and commit). A case swapped between two lists,
a missing or an extra case fails here even where the counts stay the same."""

from __future__ import annotations

import json
import re

import pytest
from dataset_trees import PUBLISHED, published_splits

from sss_nnunet.datasets.specs import paper_splits

# package list name -> public list names that must hold the same cases (UNETR++ and nnFormer agree)
SAME = {
    ("synapse", "train_18"): ["train_18", "nnformer_train_18"],
    ("synapse", "test_12"): ["test_12", "nnformer_test_12", "nnformer_dataset_json_test"],
    ("acdc", "unetrpp_train_80pat"): ["unetrpp_train_80pat"],
    ("acdc", "nnformer_train_70pat"): ["nnformer_train_70pat"],
    ("acdc", "nnformer_val_10pat"): ["nnformer_val_10pat"],
    ("acdc", "test_20pat_40vol"): ["test_20pat_40vol", "nnformer_dataset_json_test"],
    ("brats_msd_task01", "train_387"): ["train_387", "nnformer_train_387"],
    ("brats_msd_task01", "val_73"): ["val_73", "nnformer_val_73"],
    ("brats_msd_task01", "test_24"): ["test_24"],
}


@pytest.mark.parametrize(("dataset", "name"), list(SAME))
def test_package_lists_equal_the_published_ones(dataset, name):
    ours = paper_splits()[dataset][name]
    assert len(ours) == len(set(ours)), f"{dataset}/{name}: duplicate case ids"
    for public in SAME[(dataset, name)]:
        theirs = published_splits()[dataset][public]
        missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
        assert sorted(ours) == theirs, f"{dataset}/{name} differs from the published {public}: -{missing} +{extra}"


def test_every_package_list_is_pinned():
    pinned = {(d, n) for d, n in SAME}
    listed = {(d, n) for d, lists in paper_splits().items() for n, v in lists.items() if isinstance(v, list)}
    assert listed == pinned


def test_published_lists_are_disjoint_and_cover_the_datasets():
    pub = published_splits()
    syn = pub["synapse"]
    assert not set(syn["train_18"]) & set(syn["test_12"]) and len(syn["train_18"]) + len(syn["test_12"]) == 30
    acdc = pub["acdc"]
    assert set(acdc["nnformer_train_70pat"]) | set(acdc["nnformer_val_10pat"]) == set(acdc["unetrpp_train_80pat"])
    assert not set(acdc["unetrpp_train_80pat"]) & set(acdc["test_20pat_40vol"])
    patients = {c.split("_frame")[0] for c in acdc["unetrpp_train_80pat"] + acdc["test_20pat_40vol"]}
    assert len(patients) == 100 and len(acdc["unetrpp_train_80pat"]) + len(acdc["test_20pat_40vol"]) == 200
    brats = pub["brats_msd_task01"]
    parts = [set(brats[k]) for k in ("train_387", "val_73", "test_24")]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 484


def test_every_published_list_names_its_source():
    data = json.loads(PUBLISHED.read_text())
    for dataset, lists in data.items():
        if dataset.startswith("_"):
            continue
        for name, entry in lists.items():
            src = entry["source"]
            assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]) and src["repo"] and src["path"], (dataset, name)
