"""Running the stock ``nnUNetv2_*`` console scripts of this environment in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import nnunet_subprocess_env

BIN = Path(sys.executable).parent


def stock_env(root: Path) -> dict:
    """The caller's environment with nnU-Net's three folders under ``root`` and our hook active."""
    return nnunet_subprocess_env(root / "raw", root / "preprocessed", root / "results", n_proc=2, n_proc_da=1,
                                 SSS_TINY_EPOCHS="1", PYTHONWARNINGS="ignore")


def run_stock(cmd: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """``cmd[0]`` from this environment's bin folder, with ``cmd[1:]``; output captured as text."""
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], env=env, capture_output=True, text=True, timeout=timeout)


def kill_when(argv: list[str], env: dict, ready: Callable[[], bool], timeout: float = 900,
              log: Path | None = None) -> bool:
    """Start ``argv`` in its own process group, SIGKILL that group as soon as ``ready()`` holds.

    Returns True when the kill happened, False when the command ended first. stdout and stderr go to
    ``log`` (readable by ``ready``) or are discarded."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"{argv[:3]} neither ended nor reached the kill point in {timeout} s")
        return False
    finally:
        if log:
            out.close()


def python_with_delay(target: str, function: str, seconds: float) -> list[str]:
    """``python -c`` running the ``sss-nnunet`` CLI with ``target.function`` slowed by ``seconds`` per call
    (the arguments follow), so that a kill lands inside a known phase; the process is otherwise unchanged."""
    code = (f"import sys, time, {target} as m\n"
            f"f = m.{function}\n"
            f"def slow(*a, **k):\n    r = f(*a, **k)\n    time.sleep({seconds})\n    return r\n"
            f"m.{function} = slow\n"
            "from sss_nnunet.cli import main\nsys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]
