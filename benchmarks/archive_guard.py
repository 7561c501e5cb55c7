"""May a new compare.json replace an archived one? Only if it keeps every finished run of the old.

    python benchmarks/archive_guard.py ARCHIVED NEW

``benchmarks/evidence.sh`` archives each piece's compare.json in docs/evidence/<piece>/ (the run
records there are the published evidence, restored on other machines). A compare over fewer rows
(``ROWS=...``), a stale or partial report in the work folder, or one that failed to start writes a
compare.json that lacks runs the archive holds; copying it over the archive would drop them. Exit 0:
NEW holds every finished run of ARCHIVED (or ARCHIVED does not exist); 1: it lacks some, listed on
stderr, and the archive must stay; 2: a file cannot be read (named on stderr). Runs are identified
by (dataset, iterations, trainer, plans, recipe, seed) (``sss_nnunet.compare.provenance.finished_runs``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sss_nnunet.compare.provenance import finished_runs, network_name  # noqa: E402
from sss_nnunet.errors import SSSError  # noqa: E402


def lost_runs(archived: Path, new: Path) -> list[tuple]:
    """Identities of the finished runs of ``archived`` that ``new`` lacks (none if ``archived`` is absent)."""
    if not archived.exists():
        return []
    kept = {key for key, _ in finished_runs(new)}
    return [key for key, _ in finished_runs(archived) if key not in kept]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archived", type=Path, metavar="ARCHIVED")
    ap.add_argument("new", type=Path, metavar="NEW")
    args = ap.parse_args(argv)
    if not args.new.is_file():
        print(f"archive_guard: {args.new}: no such file", file=sys.stderr)
        return 2
    try:
        lost = lost_runs(args.archived, args.new)
    except SSSError as e:
        print(f"archive_guard: {e}", file=sys.stderr)
        return 2
    if lost:
        named = "; ".join(f"{network_name(trainer, plans)} {recipe} seed {seed}"
                          for _, _, trainer, plans, recipe, seed in lost[:4])
        more = f" and {len(lost) - 4} more" if len(lost) > 4 else ""
        print(f"archive_guard: {args.new} lacks {len(lost)} finished run(s) of {args.archived} ({named}{more}): "
              f"the archive is kept; run the piece with all its rows to write a report that holds them",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
