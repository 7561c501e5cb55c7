"""``splits_final.json`` builders: a list of ``{"train": [...], "val": [...]}``, one per fold.

Cross-validation folds come from nnU-Net's own seeded ``generate_crossval_split``
(sklearn ``KFold``, shuffle, seed 12345), so a plain 5-fold CV here is exactly the split
``nnUNetv2_train`` would have made itself. Grouped CV (ACDC) splits patients, not
frames, so the two frames of a patient are never on both sides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sss_nnunet.errors import SSSError

Split = dict[str, list[str]]
N_FOLDS = 5


def cross_validation(identifiers: Iterable[str], group: Callable[[str], str] | None = None,
                     n_folds: int = N_FOLDS) -> list[Split]:
    """``n_folds``-fold CV over ``identifiers``; with ``group``, over the groups they fall into."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split  # imports sklearn: slow

    identifiers = sorted(identifiers)
    group = group or (lambda x: x)
    groups = sorted({group(i) for i in identifiers})
    if len(groups) < n_folds:
        raise SSSError(
            f"a {n_folds}-fold split needs at least {n_folds} training "
            f"{'cases' if len(groups) == len(identifiers) else 'patients'}, found {len(groups)}"
        )
    folds = []
    for fold in generate_crossval_split(groups, seed=12345, n_splits=n_folds):
        val_groups = {str(g) for g in fold["val"]}
        folds.append({
            "train": [i for i in identifiers if group(i) not in val_groups],
            "val": [i for i in identifiers if group(i) in val_groups],
        })
    return folds


def paper_fold(train: Iterable[str], val: Iterable[str], present: Iterable[str]) -> Split:
    """The paper's train/val lists restricted to the ``present`` cases (sorted)."""
    present = set(present)
    return {"train": sorted(set(train) & present), "val": sorted(set(val) & present)}


def paper_fold_then_cv(paper: Split, identifiers: Iterable[str],
                       group: Callable[[str], str] | None = None) -> list[Split]:
    """Fold 0 = ``paper``; folds 1..4 = folds 1..4 of :func:`cross_validation` over ``identifiers``."""
    return [paper] + cross_validation(identifiers, group)[1:]


def check_splits(splits: list[Split], training: Iterable[str]) -> None:
    """Every fold has train and val cases, all of them training cases, disjoint."""
    training = set(training)
    for k, fold in enumerate(splits):
        for part in ("train", "val"):
            if not fold[part]:
                raise SSSError(f"fold {k} of the split has no {part} cases left")
            outside = sorted(set(fold[part]) - training)
            if outside:  # a programming error, never the user's
                raise AssertionError(f"fold {k} {part} names non-training cases {outside[:5]}")
        if set(fold["train"]) & set(fold["val"]):
            raise AssertionError(f"fold {k}: train and val overlap")
