"""Does nnU-Net find a trainer class of this name? A check for scripts, fast in the common case.

``python -m sss_nnunet.trainer_names NAME``: exit 0 when ``nnUNetv2_train -tr NAME`` would find the
class, else one line on stderr (with the closest names) and exit 2. First the source files nnU-Net
searches are scanned for ``class NAME(`` (nnunetv2's trainer folder, this package's trainers, every
``nnUNet_extTrainer`` folder): well under a second. Only when that finds nothing is nnU-Net's own
lookup run (it imports every trainer module: seconds), so a generated or re-exported class is not
refused by mistake. No torch import on the fast path.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
from pathlib import Path

_CLASS = re.compile(r"^class\s+(\w+)\s*[(:]", re.MULTILINE)


def search_folders() -> list[Path]:
    """The folders whose ``.py`` files define the trainers nnU-Net can find."""
    folders = []
    spec = importlib.util.find_spec("nnunetv2")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) / "training" / "nnUNetTrainer" for p in spec.submodule_search_locations]
    folders.append(Path(__file__).resolve().parent / "trainers")
    folders += [Path(p) for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p.strip()]
    return [f for f in folders if f.is_dir()]


def defined_classes(folders: list[Path]) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        for file in folder.rglob("*.py"):
            try:
                names.update(_CLASS.findall(file.read_text(errors="replace")))
            except OSError:
                continue
    return names


def trainer_problem(name: str) -> str | None:
    """None when nnU-Net finds trainer ``name``; else the one-line reason."""
    names = defined_classes(search_folders())
    if name in names:
        return None
    try:
        from sss_nnunet.compare.budget import find_trainer

        find_trainer(name)
        return None
    except LookupError:
        pass
    close = difflib.get_close_matches(name, sorted(n for n in names if "Trainer" in n), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (f"trainer '{name}' not found: no such class in nnU-Net's trainers, sss_nnunet's or "
            f"nnUNet_extTrainer's folders{hint}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sss_nnunet.trainer_names",
                                     description="Exit 0 if nnU-Net finds the trainer, else one line and exit 2.")
    parser.add_argument("trainer", help="trainer class name, e.g. SSSTrainer")
    problem = trainer_problem(parser.parse_args(argv).trainer)
    if problem is None:
        return 0
    print(problem, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
