"""The `sss-nnunet` dispatcher: lists what is installed, loads one subcommand, clean errors."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from sss_nnunet import cli
from sss_nnunet.errors import SSSError
from tests.conftest import SSS_NNUNET

BIN = Path(SSS_NNUNET)


def test_help_lists_the_installed_commands():
    out = subprocess.run([str(BIN), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for name in ("convert", "evaluate"):
        assert name in out.stdout


def test_a_missing_module_hides_its_command(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("sss_nnunet.not_a_package.cli", "missing"))
    assert "ghost" not in cli._available()
    assert "convert" in cli._available()


def test_user_errors_exit_2_with_one_line(monkeypatch, capsys):
    module = types.ModuleType("fake_cmd")
    module.add_arguments = lambda p: p.add_argument("--x")

    def run(args):
        raise SSSError(f"bad input {args.x}")

    module.run = run
    monkeypatch.setitem(sys.modules, "fake_cmd", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "a test command"))
    monkeypatch.setattr(cli, "_exists", lambda m: m in sys.modules or cli.importlib.util.find_spec(m) is not None)
    assert cli.main(["fake", "--x", "file.nii.gz"]) == 2
    assert capsys.readouterr().err.strip() == "sss-nnunet fake: error: bad input file.nii.gz"
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2 and "no-such-command" in capsys.readouterr().err
