"""``sss-nnunet convert DATASET --raw PATH``: a raw download -> ``$nnUNet_raw/DatasetNNN_Name``.

Datasets (ids and names in ``specs.py``): ``synapse`` (801, 8 organs, 18/12 paper split;
``--btcv13`` for 802), ``btcv`` (802, 13 organs, 5-fold CV), ``acdc`` (803), ``brats``
(804 MSD Task01, or BraTS 2021 when the folder has that layout), ``brats2021`` (805),
``isic2016`` (806, official 900/379 split), ``isic2017`` (807) and ``isic2018`` (808): 2D RGB
PNGs, VM-UNet's 7:3 split (seeded; ``--seed``, or ``--split FILE``), ``--resize 256`` as VM-UNet.
Also writes ``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sss_nnunet.errors import SSSError

DATASETS = ("synapse", "btcv", "acdc", "brats", "brats2021", "isic2016", "isic2017", "isic2018")
ISIC = ("isic2016", "isic2017", "isic2018")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to convert")
    parser.add_argument("--raw", required=True, type=Path, metavar="PATH",
                        help="the extracted download (BTCV RawData, ACDC database, Task01_BrainTumour, "
                             "BraTS 2021 training data, the folder holding the extracted ISIC archives)")
    parser.add_argument("--id", type=int, dest="dataset_id", metavar="N",
                        help="nnU-Net dataset id (default: the one in specs.py, e.g. 801 for synapse)")
    parser.add_argument("--btcv13", action="store_true",
                        help="synapse only: the 13-organ BTCV dataset for 5-fold CV (same as 'btcv')")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing converted dataset")
    parser.add_argument("--allow-missing", action="store_true",
                        help="convert the cases that are there and report the missing ones")
    parser.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                        help="parallel processes (default: min(4, CPUs) = %(default)s)")
    isic = parser.add_argument_group("ISIC only (isic2016, isic2017, isic2018)")
    isic.add_argument("--split", type=Path, metavar="FILE",
                      help='train/test split: JSON {"train": [...], "test": [...]} of image names, or a text '
                           "file of test image names, one per line (default: isic2016 the official split, "
                           "isic2017/2018 a seeded 7:3 split as VM-UNet)")
    isic.add_argument("--seed", type=int, metavar="N",
                      help="seed of the 7:3 split (default 12345)")
    isic.add_argument("--resize", metavar="H[xW]",
                      help="resize images (bilinear) and masks (bilinear, >= 0.5) to H x W pixels, e.g. 256 "
                           "(VM-UNet) or 512 (Zig-RiR); default: keep the original sizes")


def run(args: argparse.Namespace) -> int:
    from sss_nnunet.datasets import acdc, brats, synapse
    from sss_nnunet.datasets.writer import write_dataset

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
                           allow_missing=args.allow_missing, workers=args.workers)
    print(report.summary())
    return 0
