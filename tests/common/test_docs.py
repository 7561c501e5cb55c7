"""Every command and flag shown in README.md and docs/*.md exists, with its current spelling.

Commands are read from fenced code blocks and from inline code that starts with a command. For
``sss-nnunet`` the subcommand must exist and every flag must be one of its options; commands without
placeholders are parsed in full. ``nnUNetv2_*`` console scripts, ``python -m sss_nnunet...`` modules and
``python benchmarks/...`` scripts are checked against the argparse parser they build (caught in-process
at ``parse_args``, nothing runs); the shell scripts against their ``--help``; ``make`` targets against the
Makefile. Inline flags outside a command must be an option of one of these tools. docs/results.md is a
record of commands that ran, so old (deprecated) spellings are allowed there only.
"""

from __future__ import annotations

import argparse
import functools
import re
import runpy
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from unittest import mock

import pytest

from sss_nnunet import cli
from tests.conftest import restore_signal_state, signal_state

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RECORDS = {"docs/results.md"}  # commands as they ran: old spellings allowed
FLAG = re.compile(r"^--?[A-Za-z][\w-]*$")
PLACEHOLDER = re.compile(r"[\[\]|<>$]|\.\.\.|\bN\b|\bID\b|\bDIR\b|\bFILE\b|\bCONFIG\b|\bFOLD\b|\bTRAINER\b|\bNAME\b")
# flags of tools outside this project that the pages mention in running text (pytest, pip)
EXTERNAL_FLAGS = {"-m", "-k", "-q", "--durations", "-e", "-c"}
SBATCH_FLAGS = {"--signal", "--requeue", "--array", "--dependency"}  # sbatch options the generated scripts use


def rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def code_lines(text: str) -> list[tuple[str, bool]]:
    """(command, complete): commands of fenced shell blocks (continuations joined, comments and prompts
    removed; complete) and inline code spans outside fences (often a part of a command line)."""
    commands, fenced, lang, buffer = [], False, "", ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced, lang = (not fenced), stripped[3:].strip()
            continue
        if fenced:
            if lang not in ("", "bash", "sh", "shell", "console"):
                continue
            buffer += " " + stripped.removeprefix("$ ")
            if buffer.endswith("\\"):
                buffer = buffer[:-1]
                continue
            commands.append((buffer.strip(), True))
            buffer = ""
        else:
            commands += [(span, False) for span in re.findall(r"`([^`]+)`", line)]
    return [(strip_comment(c), complete) for c, complete in commands if c.strip()]


def strip_comment(command: str) -> str:
    return re.split(r"\s#\s|\s#$", " " + command, maxsplit=1)[0].strip()


def flags_of(words: list[str]) -> list[str]:
    """Option words of a command line (placeholders like [--x | --y] included), up to a bare --."""
    found = []
    for word in words:
        if word == "--":
            break
        for piece in re.split(r"[|\[\]()]", word):
            piece = piece.split("=", 1)[0].rstrip(",.;:")
            if FLAG.match(piece):
                found.append(piece)
    return found


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser


def _capture(run, argv0: str) -> argparse.ArgumentParser:
    """The argparse parser that ``run()`` builds, caught when it parses (nothing after that runs)."""
    def grab(self, *args, **kwargs):
        raise _Captured(self)

    signals = signal_state()  # a program's __main__ may set its own handlers
    with mock.patch.object(argparse.ArgumentParser, "parse_args", grab), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", grab), \
            mock.patch.object(sys, "argv", [argv0]), mock.patch.object(sys, "excepthook", sys.excepthook):
        try:
            run()
        except _Captured as caught:
            return caught.parser
        finally:
            restore_signal_state(signals)
    raise AssertionError(f"{argv0} did not build an argparse parser")


@functools.cache
def console_script_parser(name: str) -> argparse.ArgumentParser:
    points = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == name]
    assert points, f"no console script {name} is installed"
    return _capture(points[0].load(), name)


@functools.cache
def module_parser(module: str) -> argparse.ArgumentParser:
    return _capture(lambda: runpy.run_module(module, run_name="__main__", alter_sys=False), module)


@functools.cache
def script_parser(path: str) -> argparse.ArgumentParser:
    assert (ROOT / path).is_file(), f"{path} does not exist"
    return _capture(lambda: runpy.run_path(str(ROOT / path), run_name="__main__"), path)


@functools.cache
def shell_script_flags(path: str, first: str | None) -> frozenset[str]:
    assert (ROOT / path).is_file(), f"{path} does not exist"
    args = ["bash", str(ROOT / path), *([first] if first else []), "--help"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
    return frozenset(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", result.stdout))


@functools.cache
def sss_parser(command: str) -> argparse.ArgumentParser:
    return cli.build_parser(command).subcommands[command]


def options(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._option_string_actions)


def check_command(words: list[str], page: str, complete: bool = True) -> set[str]:
    """Checks one command line (``complete``: parse it in full when it has no placeholders); returns the
    option strings of the tool it runs (empty if not ours)."""
    head = words[0]
    if "*" in head or "{" in head or head.endswith("/"):
        return set()  # a family of commands or a folder, e.g. nnUNetv2_*
    if head == "sss-nnunet":
        top = cli.build_parser()
        rest = words[1:]
        if not rest or rest[0].startswith("-"):
            unknown = set(flags_of(rest)) - options(top)
            assert not unknown, f"{page}: sss-nnunet has no option {sorted(unknown)}"
            return options(top)
        name = rest[0]
        assert name in cli.COMMANDS, f"{page}: sss-nnunet has no subcommand {name!r} ({' '.join(words)})"
        parser = sss_parser(name)
        known = options(parser)
        old = set(getattr(parser, "deprecated", {}))
        used = set(flags_of(rest[1:]))
        assert not used - known - old, f"{page}: sss-nnunet {name} has no option {sorted(used - known - old)}"
        if page not in RECORDS:
            assert not used & old, f"{page}: old spelling {sorted(used & old)} in `{' '.join(words)}`"
        if complete and not PLACEHOLDER.search(" ".join(rest)) and "--help" not in rest and "-h" not in rest:
            try:
                parser.parse_args(rest[1:])
            except SystemExit as e:
                raise AssertionError(f"{page}: `{' '.join(words)}` does not parse") from e
        return known | old
    if head.startswith("nnUNetv2_"):
        parser = console_script_parser(head)
    elif head in ("python", "python3") and len(words) > 2 and words[1] == "-m" and words[2].startswith("sss_nnunet"):
        parser = module_parser(words[2])
        words = words[2:]
    elif head in ("python", "python3") and len(words) > 1 and words[1].startswith("benchmarks/"):
        parser = script_parser(words[1])
        words = words[1:]
    elif head.startswith(("training_scripts/", "evaluation_scripts/")):
        first = words[1] if len(words) > 1 and words[1].startswith("isic") else None
        known = shell_script_flags(head, first)
        unknown = set(flags_of(words[1:])) - known
        assert not unknown, f"{page}: {head} has no option {sorted(unknown)}"
        return set(known)
    elif head == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
        for word in words[1:]:
            assert "=" in word or word in targets, f"{page}: the Makefile has no target {word!r}"
        return set()
    else:
        return set()  # not one of ours (export, pip, flock, ...)
    unknown = set(flags_of(words[1:])) - options(parser)
    assert not unknown, f"{page}: {' '.join(words[:2])} has no option {sorted(unknown)}"
    return options(parser)


def split_words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def commands_of(page: Path) -> list[tuple[list[str], bool]]:
    return [(split_words(c), complete) for c, complete in code_lines(page.read_text())]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_command_and_flag_shown_exists(page):
    for words, complete in commands_of(page):
        if words:
            check_command(words, rel(page), complete)


def test_inline_flags_belong_to_a_documented_tool():
    from torch.distributed.run import get_args_parser  # torchrun's own options (docs/scale_out.md)

    known = set(EXTERNAL_FLAGS) | SBATCH_FLAGS | options(get_args_parser())
    for name in cli._available():
        known |= options(sss_parser(name)) | set(getattr(sss_parser(name), "deprecated", {}))
    for page in PAGES:
        for words, complete in commands_of(page):
            if words:
                known |= check_command(words, rel(page), complete)
    for page in PAGES:
        for words, _ in commands_of(page):
            if words and FLAG.match(words[0].split("=")[0]):
                assert words[0].split("=")[0] in known, f"{rel(page)}: no documented tool has the flag {words[0]!r}"


def test_readme_is_short_and_undated():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 170
    assert not re.search(r"\btoday\b|\b20\d\d-\d\d-\d\d\b|\btests? in \d", text, flags=re.I)
    assert "<!-- results-summary -->" in text
    fenced_setup = [c for c, complete in code_lines(text) if complete and c.startswith("make ")]
    assert fenced_setup[:2] == ["make demo", "make test"]
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in text, f"README has no link to docs/{page.name}"
        if rel(page) not in RECORDS:
            assert "(../README.md)" in page.read_text(), f"{rel(page)} does not link back to the README"


def test_the_checker_catches_a_wrong_flag_an_unknown_command_and_an_old_spelling():
    with pytest.raises(AssertionError, match="has no option"):
        check_command(split_words("sss-nnunet evaluate --pred p --gt g -d 801 --bogus"), "x.md")
    with pytest.raises(AssertionError, match="no subcommand 'nosuch'"):
        check_command(split_words("sss-nnunet nosuch -d 1"), "x.md")
    with pytest.raises(AssertionError, match="old spelling"):
        check_command(split_words("sss-nnunet evaluate --pred p --gt g --dataset 801"), "x.md")
    check_command(split_words("sss-nnunet evaluate --pred p --gt g --dataset 801"), "docs/results.md")
    with pytest.raises(AssertionError, match="does not parse"):
        check_command(split_words("sss-nnunet convert nowhere"), "x.md")
    with pytest.raises(AssertionError, match="has no option"):
        check_command(split_words("nnUNetv2_train 1 3d_fullres 0 --no-such-flag"), "x.md")
    with pytest.raises(AssertionError, match="has no option"):
        check_command(split_words("training_scripts/run_training_acdc.sh --trainerz X"), "x.md")
