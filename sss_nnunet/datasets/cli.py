"""``sss-nnunet convert DATASET``: a raw download (or a built-in generator) -> ``$nnUNet_raw/DatasetNNN_Name``.

Dataset ids and names are in ``specs.py``; the user-facing description is ``DESCRIPTION``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_nnunet import cli_args
from sss_nnunet.errors import SSSError

DATASETS = ("synapse", "btcv", "acdc", "brats", "brats2021", "isic2016", "isic2017", "isic2018")
ISIC = ("isic2016", "isic2017", "isic2018")
BUILT_IN = {"demo": 990, "context": 991, "mni152": 992, "context2d": 993}  # no download; default ids


DESCRIPTION = """\
Write a dataset in nnU-Net's layout, $nnUNet_raw/DatasetNNN_Name (imagesTr, labelsTr, dataset.json;
held-out test cases in imagesTs/labelsTs), and its split as
$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json.

From a download (--raw PATH):
  synapse    801 Synapse8: 8 organs, the paper's 18 train / 12 test cases (--btcv13: 802)
  btcv       802 BTCV13: 13 organs, 5-fold CV over 30 cases
  acdc       803 ACDC: ED and ES frames, 70 / 10 / 20 patients
  brats      804 BraTSMSD: MSD Task01_BrainTumour, 387 / 73 / 24, regions WT, TC, ET
  brats2021  805 BraTS2021: 5-fold CV
  isic2016   806 ISIC2016: 2D RGB, official 900 / 379 split (Zig-RiR)
  isic2017   807 ISIC2017: 2D RGB, seeded 7:3 split (VM-UNet; --seed or --split FILE)
  isic2018   808 ISIC2018: 2D RGB, seeded 7:3 split (VM-UNet)
Built in (no download), with held-out test cases for sss-nnunet compare:
  demo       990 SSSDemo: the synthetic CT set of sss-nnunet demo
  context    991 SSSContext: synthetic long-range context (a blob's class is decided by a marker
             45-60 mm away)
  context2d  993 SSSContext2D: the same rule on 256 x 256 pixel 2D images (several scan windows per RWKV stage)
  mni152     992 MNI152Tissue: grey/white matter from the real ICBM152 MR template shipped by
             nilearn (pip install '.[datasets]'; --raw DIR only to read the template elsewhere)"""


def default_workers() -> int:
    """nnU-Net's default process count capped by the CPUs (kept for callers of the old name)."""
    return cli_args.default_num_processes()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=DATASETS + tuple(BUILT_IN), help="which dataset to convert")
    parser.add_argument("--raw", type=Path, metavar="PATH",
                        help="the extracted download (BTCV RawData, ACDC database, Task01_BrainTumour, "
                             "BraTS 2021 training data, the folder holding the extracted ISIC archives); "
                             "not for the built-in " + ", ".join(BUILT_IN))
    parser.add_argument("-d", "--dataset_id", type=int, dest="dataset_id", metavar="ID",
                        help="nnU-Net dataset id to write (default: the dataset's own, e.g. 801 for synapse)")
    parser.add_argument("--btcv13", action="store_true",
                        help="synapse only: the 13-organ BTCV dataset for 5-fold CV (same as 'btcv')")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset folder that sss-nnunet convert wrote (never one holding --raw "
                             "or files it did not write)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="convert the cases that are there and report the missing ones")
    cli_args.add_num_processes(parser, help="parallel processes")
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
                          "context and context2d 40, mni152 20)")
    built_in.add_argument("--test-cases", type=int, metavar="N",
                          help="held-out test cases in imagesTs/labelsTs (default: demo 6, context and "
                          "context2d 10, mni152 5)")
    built_in.add_argument("--spacing", type=float, default=4.0, metavar="MM",
                          help="mni152 only: voxel size in mm (default: 4)")
    cli_args.deprecate(parser, "--id", "--dataset_id")
    cli_args.deprecate(parser, "--workers", "-np")


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
                           allow_missing=args.allow_missing, workers=args.num_processes,
                           inputs=(args.raw, getattr(args, "split", None)))
    print(report.summary())
    return 0
