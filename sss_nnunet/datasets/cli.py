"""``sss-nnunet convert DATASET --raw PATH``: a raw download -> ``$nnUNet_raw/DatasetNNN_Name``.

Datasets (ids and names in ``specs.py``): ``synapse`` (801, 8 organs, 18/12 paper split;
``--btcv13`` for 802), ``btcv`` (802, 13 organs, 5-fold CV), ``acdc`` (803), ``brats``
(804 MSD Task01, or BraTS 2021 when the folder has that layout), ``brats2021`` (805).
Also writes ``$nnUNet_preprocessed/DatasetNNN_Name/splits_final.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sss_nnunet.errors import SSSError

DATASETS = ("synapse", "btcv", "acdc", "brats", "brats2021")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to convert")
    parser.add_argument("--raw", required=True, type=Path, metavar="PATH",
                        help="the extracted download (BTCV RawData, ACDC database, Task01_BrainTumour, "
                             "BraTS 2021 training data)")
    parser.add_argument("--id", type=int, dest="dataset_id", metavar="N",
                        help="nnU-Net dataset id (default: the one in specs.py, e.g. 801 for synapse)")
    parser.add_argument("--btcv13", action="store_true",
                        help="synapse only: the 13-organ BTCV dataset for 5-fold CV (same as 'btcv')")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing converted dataset")
    parser.add_argument("--allow-missing", action="store_true",
                        help="convert the cases that are there and report the missing ones")
    parser.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                        help="parallel processes (default: min(4, CPUs) = %(default)s)")


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
    conversion = converters[key](args.raw)
    report = write_dataset(conversion, dataset_id=args.dataset_id, overwrite=args.overwrite,
                           allow_missing=args.allow_missing, workers=args.workers)
    print(report.summary())
    return 0
