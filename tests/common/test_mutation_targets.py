"""benchmarks/mutation.py stays plantable: every mutation finds its target in today's code and names test files
that exist. A mutation whose code moved would otherwise only show up as "TARGET NOT FOUND" when someone runs the
script (as the scan gate's did after its rewrite)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mutation_module():
    spec = importlib.util.spec_from_file_location("sss_mutation", ROOT / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MUTATION = _mutation_module()


@pytest.mark.parametrize("m", MUTATION.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_can_be_planted(m, tmp_path):
    for test in m.tests:
        assert (ROOT / test.split("::")[0]).is_file(), f"{m.name}: no test file {test}"
    for path in sorted(ROOT.glob(m.files)):  # a copy of only the files the mutation may edit
        if path.is_file() and "__pycache__" not in path.parts:
            dest = tmp_path / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    edited, original = m.plant(tmp_path)
    assert edited.read_text() != original
    assert (ROOT / edited.relative_to(tmp_path)).read_text() == original  # the repository itself is untouched
