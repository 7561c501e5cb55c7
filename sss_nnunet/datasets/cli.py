"""``sss-nnunet convert DATASET --raw PATH``: a raw download -> ``$nnUNet_raw/DatasetNNN_Name``.

Datasets (ids and names in ``specs.py``): ``synapse`` (801, 8 organs, 18/12 paper split;
``--btcv13`` for 802), ``btcv`` (802, 13 organs, 5-fold CV), ``acdc`` (803), ``brats``
(804 MSD Task01, or BraTS 2021 when the folder has that layout), ``brats2021`` (805),
``isic2016`` (806, official 900/379 split), ``isic2017`` (807) and ``isic2018`` (808): 2D RGB
PNGs, VM-UNet's 7:3 split (seeded; ``--seed``, or ``--split FILE``), ``--resize 256`` as VM-UNet.
Also writes ``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json``. A ``$nnUNet_raw`` or
``$nnUNet_preprocessed`` folder that does not exist is created (with a notice) when its parent exists; a
missing parent is an error. Every image is fully decoded and checked before anything is written.

Built-in datasets (no download), with held-out test cases in imagesTs/labelsTs for
``sss-nnunet compare``: ``demo`` (990) writes the synthetic CT set of ``sss-nnunet demo``;
``context`` (991) generates the synthetic long-range-context set
(``sss_nnunet.datasets.synthetic_context``: a blob's class is decided by a marker 45-60 mm away);
``mni152`` (992) builds grey/white-matter cases from the real ICBM152 MR template and tissue maps that
the nilearn package ships (``sss_nnunet.datasets.mni_tissue``; --raw DIR only to read them elsewhere).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sss_nnunet.errors import SSSError

DATASETS = ("synapse", "btcv", "acdc", "brats", "brats2021", "isic2016", "isic2017", "isic2018")
ISIC = ("isic2016", "isic2017", "isic2018")
BUILT_IN = {"demo": 990, "context": 991, "mni152": 992}  # no download; default ids


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dataset", choices=DATASETS + tuple(BUILT_IN), help="which dataset to convert")
    parser.add_argument("--raw", type=Path, metavar="PATH",
                        help="the extracted download (BTCV RawData, ACDC database, Task01_BrainTumour, "
                             "BraTS 2021 training data, the folder holding the extracted ISIC archives); "
                             "not for the built-in " + ", ".join(BUILT_IN))
    parser.add_argument("--id", type=int, dest="dataset_id", metavar="N",
                        help="nnU-Net dataset id (default: the one in specs.py, e.g. 801 for synapse)")
    parser.add_argument("--btcv13", action="store_true",
                        help="synapse only: the 13-organ BTCV dataset for 5-fold CV (same as 'btcv')")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset folder that sss-nnunet convert wrote (never one holding --raw "
                             "or files it did not write)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="convert the cases that are there and report the missing ones")
    parser.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                        help="parallel processes (default: min(4, CPUs) = %(default)s)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="ISIC 2017/2018: seed of the 7:3 split (default 12345); built-in datasets: "
                             "generator seed (default 0)")
    isic = parser.add_argument_group("ISIC only (isic2016, isic2017, isic2018)")
    isic.add_argument("--split", type=Path, metavar="FILE",
                      help='train/test split: JSON {"train": [...], "test": [...]} of image names, or a text '
                           "file of test image names, one per line (default: isic2016 the official split, "
                           "isic2017/2018 a seeded 7:3 split as VM-UNet)")
    isic.add_argument("--resize", metavar="H[xW]",
                      help="resize images (bilinear) and masks (bilinear, >= 0.5) to H x W pixels, e.g. 256 "
                           "(VM-UNet) or 512 (Zig-RiR); default: keep the original sizes")
    built_in = parser.add_argument_group("built-in datasets (" + ", ".join(BUILT_IN) + ")")
    built_in.add_argument("--train-cases", type=int, metavar="N", help="training cases (default: demo 20, "
                          "context 40, mni152 20)")
    built_in.add_argument("--test-cases", type=int, metavar="N",
                          help="held-out test cases in imagesTs/labelsTs (default: demo 6, context 10, "
                          "mni152 5)")
    built_in.add_argument("--spacing", type=float, default=4.0, metavar="MM",
                          help="mni152 only: voxel size in mm (default: 4)")


def run_built_in(args: argparse.Namespace) -> int:
    from sss_nnunet.datasets import mni_tissue, synthetic

    if args.raw is not None and args.dataset != "mni152":
        raise SSSError(f"'{args.dataset}' is generated: it takes no --raw")
    from sss_nnunet.io import nnunet_folder

    raw_root = nnunet_folder("nnUNet_raw")
    dataset_id = args.dataset_id if args.dataset_id is not None else BUILT_IN[args.dataset]
    seed = 0 if args.seed is None else args.seed
    if args.dataset == "mni152":
        n_train = args.train_cases if args.train_cases is not None else 20
        n_test = args.test_cases if args.test_cases is not None else 5
        folder = mni_tissue.write_mni_tissue_dataset(raw_root, args.raw, dataset_id, n_train, n_test, seed,
                                                     args.spacing, args.overwrite)
    else:
        demo = args.dataset == "demo"
        n_train = args.train_cases if args.train_cases is not None else (20 if demo else 40)
        n_test = args.test_cases if args.test_cases is not None else (6 if demo else 10)
        folder = synthetic.write_synthetic_dataset(raw_root, dataset_id, n_train, n_test, seed,
                                                   overwrite=args.overwrite, kind="ct" if demo else args.dataset)
    print(f"wrote {folder}: {n_train} training and {n_test} test cases (imagesTs/labelsTs)")
    return 0


def run(args: argparse.Namespace) -> int:
    from sss_nnunet.datasets import acdc, brats, synapse
    from sss_nnunet.datasets.writer import write_dataset

    if args.dataset in BUILT_IN:
        return run_built_in(args)
    if args.raw is None:
        raise SSSError(f"'{args.dataset}' needs --raw PATH (the extracted download)")
    converters = {"synapse": synapse.synapse8, "btcv": synapse.btcv13, "acdc": acdc.acdc,
                  "brats": brats.brats, "brats2021": brats.brats2021}
    key = args.dataset
    if args.btcv13:
        if key not in ("synapse", "btcv"):
            raise SSSError("--btcv13 only applies to the synapse dataset")
        key = "btcv"
    if args.workers < 1:
        raise SSSError(f"--workers must be >= 1, got {args.workers}")
    if key in ISIC:
        from sss_nnunet.datasets import isic

        size = isic.parse_size(args.resize) if args.resize is not None else None
        seed = isic.DEFAULT_SEED if args.seed is None else args.seed
        if args.split is not None and args.seed is not None:
            raise SSSError("--seed applies to the random 7:3 split, not to a --split file")
        if key == "isic2016" and args.seed is not None:
            raise SSSError("--seed: isic2016 uses the official train/test split (no random split)")
        conversion = isic.isic(key, args.raw, split=args.split, seed=seed, resize=size)
    else:
        given = [f"--{n}" for n in ("split", "seed", "resize") if getattr(args, n) is not None]
        if given:
            raise SSSError(f"{', '.join(given)} only apply to the ISIC datasets ({', '.join(ISIC)})")
        conversion = converters[key](args.raw)
    report = write_dataset(conversion, dataset_id=args.dataset_id, overwrite=args.overwrite,
                           allow_missing=args.allow_missing, workers=args.workers,
                           inputs=(args.raw, getattr(args, "split", None)))
    print(report.summary())
    return 0
