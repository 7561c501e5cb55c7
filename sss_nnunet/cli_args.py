"""One command-line convention for every ``sss-nnunet`` subcommand: nnU-Net's, where nnU-Net has one.

Flags (as ``nnUNetv2_train`` / ``nnUNetv2_predict`` / ``nnUNetv2_plan_and_preprocess`` spell them):
``-d`` dataset id(s) or name(s), ``-c`` configuration, ``-f`` fold, ``-tr`` trainer, ``-p`` plans
identifier, ``-device``, ``-np`` / ``-npfp`` processes (nnU-Net's default, capped by the CPU count),
``-o`` output, and nnU-Net's own long names for nnU-Net's options (``--verify_dataset_integrity``,
``--no_pp``, ``-gpu_memory_target``).

A subcommand module uses it like this::

    from sss_nnunet import cli_args

    def add_arguments(parser):
        cli_args.add_dataset(parser, several=True)
        cli_args.add_device(parser)
        cli_args.deprecate(parser, "--device", "-device")   # old spelling: still parsed, one stderr line

The ``sss-nnunet`` dispatcher makes every subcommand parser an :class:`ArgumentParser` (``deprecate``
turns a plain argparse parser into one); old spellings are rewritten before argparse sees them, so a required option
given under its old name still counts as given. Help output is plain text: RST double backticks in a
module docstring used as description are removed when the help is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from sss_nnunet.errors import SSSError

NNUNET_DEFAULT_NUM_PROCESSES = 8  # nnunetv2.configuration.default_num_processes without nnUNet_def_n_proc
DEVICES = ("cuda", "cpu")


def deprecation_notice(prog: str, old: str, new: str) -> str:
    return f"{prog}: warning: {old} is deprecated, use {new}"


def rewrite_deprecated(args: list[str], deprecated: dict[str, str], prog: str) -> list[str]:
    """``args`` with every old option spelling (``--old`` or ``--old=value``) replaced by the new one,
    up to a ``--``; prints one deprecation line per old spelling used to stderr."""
    out, warned = [], set()
    for i, arg in enumerate(args):
        if arg == "--":
            out += args[i:]
            break
        name, sep, value = arg.partition("=")
        if name in deprecated:
            if name not in warned:
                print(deprecation_notice(prog, name, deprecated[name]), file=sys.stderr)
                warned.add(name)
            arg = deprecated[name] + sep + value
        out.append(arg)
    return out


def strip_markup(text: str) -> str:
    """Help text without RST inline markup: ````x```` and ```x``` -> ``x``."""
    return re.sub(r"`([^`]+)`", r"\1", re.sub(r"``([^`]+)``", r"\1", text))


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that accepts deprecated option spellings (see :func:`deprecate`) and
    prints help without RST markup. Subparsers made with ``add_subparsers`` are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.deprecated: dict[str, str] = {}

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(rewrite_deprecated(args, self.deprecated, self.prog), namespace)

    def format_help(self) -> str:
        return strip_markup(super().format_help())

    def format_usage(self) -> str:
        return strip_markup(super().format_usage())


def deprecate(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep accepting the option spelling ``old`` for the existing option ``new`` (not shown in --help).
    A plain ``argparse.ArgumentParser`` is turned into one of this module's (same state, new class)."""
    if not isinstance(parser, ArgumentParser):
        cls = type(parser)
        parser.__class__ = ArgumentParser if cls is argparse.ArgumentParser else type(
            f"Deprecating{cls.__name__}", (ArgumentParser, cls), {})
        parser.deprecated = {}
    if new not in parser._option_string_actions:
        raise ValueError(f"deprecate({old!r}): the parser has no option {new!r}")
    parser.deprecated[old] = new


def deprecated_spellings(parser: argparse.ArgumentParser) -> dict[str, str]:
    return dict(getattr(parser, "deprecated", {}))


def default_num_processes() -> int:
    """nnU-Net's default process count (``nnUNet_def_n_proc``, else 8), capped by the CPU count."""
    env = os.environ.get("nnUNet_def_n_proc")
    nnunet = int(env) if env and env.strip().isdigit() and int(env) > 0 else NNUNET_DEFAULT_NUM_PROCESSES
    return max(1, min(nnunet, os.cpu_count() or 1))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_dataset(parser: argparse.ArgumentParser, several: bool = False, required: bool = True,
                help: str | None = None, dest: str = "dataset", **kwargs) -> argparse.Action:
    """``-d``: dataset id(s) or name(s) (``801``, ``Dataset801_Synapse8``, ``Synapse8``), dest ``dataset``."""
    what = "one or several dataset ids or names" if several else "dataset id or name"
    return parser.add_argument("-d", dest=dest, nargs="+" if several else None, required=required,
                               metavar="DATASET", help=help or f"{what} (e.g. 801 or Dataset801_Synapse8)",
                               **kwargs)


def add_configuration(parser: argparse.ArgumentParser, default: str | list[str] | None = None,
                      several: bool = False, help: str | None = None, **kwargs) -> argparse.Action:
    """``-c``: nnU-Net configuration(s) (2d, 3d_fullres, ...), dest ``configuration``."""
    shown = " ".join(default) if isinstance(default, list) else default
    text = help or ("configuration" + (f" (default: {shown})" if default else ", e.g. 3d_fullres or 2d"))
    return parser.add_argument("-c", dest="configuration", nargs="+" if several else None, default=default,
                               required=default is None, metavar="CONFIG", help=text, **kwargs)


def add_fold(parser: argparse.ArgumentParser, default: str | None = "0", help: str | None = None) -> argparse.Action:
    """``-f``: fold 0-4 or ``all``, dest ``fold`` (a string, as nnU-Net)."""
    text = help or "fold: 0-4 or all" + (f" (default: {default})" if default is not None else "")
    return parser.add_argument("-f", dest="fold", default=default, required=default is None, metavar="FOLD",
                               help=text)


def add_trainer(parser: argparse.ArgumentParser, default: str | None = None, several: bool = False,
                help: str | None = None, dest: str = "trainer") -> argparse.Action:
    """``-tr``: nnU-Net trainer class name(s), dest ``trainer``."""
    text = help or ("trainer class" + (f" (default: {default})" if default else ", e.g. SSSTrainer"))
    return parser.add_argument("-tr", dest=dest, nargs="+" if several else None, default=default,
                               required=default is None, metavar="TRAINER", help=text)


def add_plans(parser: argparse.ArgumentParser, default: str = "nnUNetPlans") -> argparse.Action:
    """``-p``: plans identifier, dest ``plans``."""
    return parser.add_argument("-p", dest="plans", default=default, metavar="PLANS",
                               help=f"plans identifier (default: {default}; SSSPlans after sss-nnunet plan)")


def add_device(parser: argparse.ArgumentParser, default: str | None = None, help: str | None = None) -> argparse.Action:
    """``-device``: cuda or cpu, dest ``device``; ``None`` means cuda if available, else cpu."""
    text = help or (f"default: {default}" if default else "default: cuda if available, else cpu")
    return parser.add_argument("-device", dest="device", default=default, choices=DEVICES, help=text)


def add_num_processes(parser: argparse.ArgumentParser, flag: str = "-np", dest: str = "num_processes",
                      help: str = "processes", several: bool = False, **kwargs) -> argparse.Action:
    """``-np`` / ``-npfp``: process count(s), default nnU-Net's capped by the CPU count."""
    default = default_num_processes()
    return parser.add_argument(flag, dest=dest, type=positive_int, nargs="+" if several else None,
                               default=[default] if several else default, metavar="N",
                               help=f"{help} (default: nnU-Net's {NNUNET_DEFAULT_NUM_PROCESSES} or nnUNet_def_n_proc, "
                                    f"at most the CPU count: {default})", **kwargs)


def resolve_dataset_id(value: str, raw: Path | None = None) -> int:
    """A dataset id from ``801``, ``Dataset801``, ``Dataset801_Synapse8`` or a name (``Synapse8``,
    looked up as ``raw/DatasetNNN_Synapse8``). Raises SSSError naming the value."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:Dataset)?(\d{1,3})(?:_.+)?", text)
    if match:
        return int(match.group(1))
    if raw is None:
        env = os.environ.get("nnUNet_raw")
        raw = Path(env) if env else None
    if raw is None or not raw.is_dir():
        raise SSSError(f"dataset {text!r}: not an id, and nnUNet_raw is not set to look the name up")
    found = sorted(p.name for p in raw.glob(f"Dataset[0-9][0-9][0-9]_{text}") if p.is_dir())
    if len(found) != 1:
        what = "no folder" if not found else f"several folders ({', '.join(found)})"
        raise SSSError(f"dataset {text!r}: {what} DatasetNNN_{text} in nnUNet_raw ({raw})")
    return int(found[0][7:10])
