"""Runs the Triton backend's cases on the CPU under TRITON_INTERPRET=1, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("triton_interpret_cases.py")


@pytest.mark.slow
def test_triton_backend_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("SSS_BI_WKV_BACKEND", None)
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=root, env=env, capture_output=True, text=True, timeout=1800,
    )
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-40:])
    assert res.returncode == 0, tail
    assert " passed" in res.stdout and "skipped" not in res.stdout, tail
