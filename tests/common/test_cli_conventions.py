"""One flag convention for every sss-nnunet command: old spellings, plain help, usage on errors, --version."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sss_nnunet import cli, cli_args
from sss_nnunet.errors import SSSError

BIN = Path(sys.executable).parent / "sss-nnunet"
MARKUP = re.compile(r"`|:(class|func|mod|meth):")


def subparser(name: str) -> argparse.ArgumentParser:
    return cli.build_parser(name).subcommands[name]


def minimal_args(parser: argparse.ArgumentParser, skip: argparse.Action | None = None) -> list[str]:
    """Arguments that satisfy every required option and positional of ``parser`` (except ``skip``)."""
    args: list[str] = []
    for action in parser._actions:
        if action is skip or isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings and not action.required:
            continue
        value = [str(sorted(action.choices)[0]) if action.choices else "1"]
        args += ([action.option_strings[0]] if action.option_strings else []) + value
    return args


def value_for(action: argparse.Action) -> list[str]:
    if action.nargs == 0:
        return []
    return [str(sorted(action.choices)[0]) if action.choices else "3"]


@pytest.mark.parametrize("name", sorted(cli._available()))
def test_help_of_every_subcommand_is_plain_text(name):
    text = subparser(name).format_help()
    assert text.startswith(f"usage: sss-nnunet {name}")
    assert not MARKUP.search(text), MARKUP.search(text).group(0)


def test_top_level_help_is_for_users_and_lists_every_command():
    text = cli.build_parser().format_help()
    assert not MARKUP.search(text)
    assert "console script" not in text and "add_arguments" not in text
    for name in cli._available():
        assert f"    {name}" in text
    for dataset in ("synapse", "acdc", "brats", "isic2016", "demo", "context", "mni152"):
        assert dataset in text


def test_version_comes_from_the_package_metadata():
    out = subprocess.run([str(BIN), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert out.stdout.strip() == f"sss-nnunet {metadata.version('sss-nnunet')}"


@pytest.mark.parametrize("argv", [["evaluate", "--bogus"], ["evaluate", "--pred", "p"], ["plan", "-d"],
                                  ["convert", "nowhere"], ["attention", "-d", "1", "-device", "tpu"]])
def test_a_bad_flag_prints_the_subcommands_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: sss-nnunet {argv[0]} "), err
    assert f"sss-nnunet {argv[0]}: error:" in err


def deprecated_cases():
    for name in sorted(cli._available()):
        parser = subparser(name)
        for old, new in cli_args.deprecated_spellings(parser).items():
            yield pytest.param(name, old, new, id=f"{name}{old}")


@pytest.mark.parametrize(("name", "old", "new"), list(deprecated_cases()))
def test_old_spellings_parse_as_the_new_ones_with_one_notice(name, old, new, capsys):
    parser = subparser(name)
    action = parser._option_string_actions[new]
    base = minimal_args(parser, skip=action)
    capsys.readouterr()
    expected = parser.parse_args(base + [new, *value_for(action)])
    assert capsys.readouterr().err == ""
    got = parser.parse_args(base + [old, *value_for(action)])
    assert vars(got) == vars(expected)
    assert capsys.readouterr().err == f"sss-nnunet {name}: warning: {old} is deprecated, use {new}\n"
    assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", parser.format_help())  # not advertised


def test_the_renamed_options_are_registered():
    spellings = {name: cli_args.deprecated_spellings(subparser(name)) for name in ("plan", "convert", "evaluate",
                                                                                   "attention", "demo")}
    assert spellings["plan"] == {"--verify": "--verify_dataset_integrity", "--no-preprocess": "--no_pp",
                                 "--gpu-memory-target": "-gpu_memory_target"}
    assert spellings["convert"] == {"--id": "--dataset_id", "--workers": "-np"}
    assert spellings["evaluate"] == {"--dataset": "-d", "--workers": "-np"}
    assert spellings["attention"] == {"--device": "-device", "--checkpoint": "-chk"}
    assert spellings["demo"] == {"--id": "-d", "--trainer": "-tr", "--fold": "-f"}


def test_rewrite_stops_at_double_dash_and_handles_equals(capsys):
    out = cli_args.rewrite_deprecated(["--workers=2", "x", "--workers", "3", "--", "--workers"],
                                      {"--workers": "-np"}, "prog")
    assert out == ["-np=2", "x", "-np", "3", "--", "--workers"]
    assert capsys.readouterr().err == "prog: warning: --workers is deprecated, use -np\n"  # once


def test_deprecate_upgrades_a_plain_parser_and_rejects_unknown_targets(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("-d", dest="dataset", required=True)
    cli_args.deprecate(parser, "--dataset", "-d")
    assert parser.parse_args(["--dataset", "7"]).dataset == "7"  # required, given under the old name
    assert "deprecated" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no option '-x'"):
        cli_args.deprecate(parser, "--old", "-x")


def test_default_num_processes_is_nnunets_capped_by_the_cpus(monkeypatch):
    monkeypatch.delenv("nnUNet_def_n_proc", raising=False)
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: 64)
    assert cli_args.default_num_processes() == 8
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: 3)
    assert cli_args.default_num_processes() == 3
    monkeypatch.setenv("nnUNet_def_n_proc", "2")
    assert cli_args.default_num_processes() == 2
    monkeypatch.setattr(cli_args.os, "cpu_count", lambda: None)
    assert cli_args.default_num_processes() == 1


def test_process_counts_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--pred", "p", "--gt", "g", "-d", "synapse", "-np", "0"])
    assert "-np: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_dataset_ids_and_names(tmp_path):
    (tmp_path / "Dataset042_Liver").mkdir()
    (tmp_path / "Dataset043_Lung").mkdir()
    (tmp_path / "Dataset044_Lung").mkdir()
    assert cli_args.resolve_dataset_id("7", tmp_path) == 7
    assert cli_args.resolve_dataset_id("Dataset801_Synapse8", tmp_path) == 801
    assert cli_args.resolve_dataset_id("Dataset801", tmp_path) == 801
    assert cli_args.resolve_dataset_id("Liver", tmp_path) == 42
    with pytest.raises(SSSError, match="several folders"):
        cli_args.resolve_dataset_id("Lung", tmp_path)
    with pytest.raises(SSSError, match="no folder DatasetNNN_Kidney"):
        cli_args.resolve_dataset_id("Kidney", tmp_path)


def test_plan_processes_per_configuration(monkeypatch):
    from sss_nnunet.plans.cli import preprocessing_processes

    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert preprocessing_processes(["2d", "3d_fullres", "3d_lowres"], None) == [6, 4, 6]
    assert preprocessing_processes(["2d", "3d_fullres"], [3]) == [3, 3]
    assert preprocessing_processes(["2d", "3d_fullres"], [3, 1]) == [3, 1]
    with pytest.raises(SSSError, match="one per configuration"):
        preprocessing_processes(["2d", "3d_fullres"], [3, 1, 2])


def test_plan_takes_several_datasets_and_checks_all_before_writing(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    (raw / "Dataset041_A").mkdir(parents=True)
    (raw / "Dataset041_A" / "dataset.json").write_text("{}")
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    assert cli.main(["plan", "-d", "41", "A", "Missing", "--no_pp"]) == 2
    assert "dataset 'Missing': no folder DatasetNNN_Missing" in capsys.readouterr().err
    assert not (tmp_path / "pre").exists()
