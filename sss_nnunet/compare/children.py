"""The child processes of a comparison and its progress lines: run a console script into a log,
the error line of a failed child's log, and the elapsed / remaining time of the runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def bin_path(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def run_logged(cmd: list[str], env: dict, log: Path, on_line: Callable[[str], None] | None = None) -> int:
    """Run a console script with its output (stdout and stderr) in ``log``; ``on_line`` sees each line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        with subprocess.Popen([bin_path(cmd[0]), *cmd[1:]], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
            for line in proc.stdout:
                f.write(line)
                f.flush()  # so that `tail -f` of the log follows the run
                if on_line is not None:
                    on_line(line.rstrip("\n"))
    return proc.returncode


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\w*: ")
_SECONDARY = ("background workers are no longer alive",)


def error_summary(log: Path, n: int = 3) -> str:
    """The first exception line of a failed child's log (a traceback's last line; data-loader follow-up
    errors skipped), else its last ``n`` non-empty lines."""
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if _ERROR_LINE.match(x) and not any(s in x for s in _SECONDARY)]
    if errors:
        return errors[0][:300]
    return " | ".join(x[:160] for x in lines[-n:])


class Progress:
    """One line per event: run i/n, trainer, seed, step, elapsed, estimated remaining time.

    The estimate: the current training extrapolated from its finished epochs, plus the mean
    prediction + evaluation time of finished runs, plus the mean wall time of finished runs for
    each run still to come (skipped runs are not counted)."""

    def __init__(self, n_runs: int, epochs: int, print_fn: Callable[[str], None] = print):
        self.n_runs, self.epochs, self.print = n_runs, epochs, print_fn
        self.t0 = time.perf_counter()
        self.run_seconds: list[float] = []  # wall time of runs that trained
        self.post_seconds: list[float] = []  # prediction + evaluation after a training
        self.run_index = 0
        self.run_t0 = self.t0
        self.train_end: float | None = None
        self.train_estimate: float | None = None

    def start_run(self) -> None:
        self.run_index += 1
        self.run_t0 = time.perf_counter()
        self.train_end = self.train_estimate = None

    def end_train(self) -> None:
        self.train_end = time.perf_counter()

    def end_run(self, trained: bool) -> None:
        now = time.perf_counter()
        if trained:
            self.run_seconds.append(now - self.run_t0)
            if self.train_end is not None:
                self.post_seconds.append(now - self.train_end)

    def epoch(self, done: int) -> None:
        """``done`` epochs of the current training finished: extrapolate its training time."""
        if done > 0:
            self.train_estimate = (time.perf_counter() - self.run_t0) / done * self.epochs

    def eta(self) -> str:
        now = time.perf_counter()
        post = sum(self.post_seconds) / len(self.post_seconds) if self.post_seconds else 0.0
        if self.train_end is not None:
            current = max(0.0, post - (now - self.train_end))
            this_run = self.train_end - self.run_t0 + post
        elif self.train_estimate is not None:
            current = max(0.0, self.train_estimate - (now - self.run_t0)) + post
            this_run = self.train_estimate + post
        else:
            current, this_run = None, None
        per_run = sum(self.run_seconds) / len(self.run_seconds) if self.run_seconds else this_run
        if per_run is None:
            return "ETA ?"
        if current is None:
            current = max(0.0, per_run - (now - self.run_t0))
        return f"ETA ~{fmt_seconds(current + per_run * (self.n_runs - self.run_index))}"

    def say(self, trainer: str, seed: int, step: str) -> None:
        elapsed = fmt_seconds(time.perf_counter() - self.t0)
        self.print(f"[compare {self.run_index}/{self.n_runs}] {trainer} seed {seed}: {step} | elapsed {elapsed} | "
                   f"{self.eta()}")
