"""A single-node SLURM for tests: munged, slurmctld and slurmd of Debian's slurm-wlm / munge packages,
run as root in the foreground from a minimal slurm.conf under a temporary folder (own munge key and
socket, own ports, state and spool folders; no cgroups, no accounting). Started and stopped by pid."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from tests.scale.runs import free_port

SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

CONF = """ClusterName=sssnnunettest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={dir}/munge.sock
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str | None:
    """Why no test SLURM can start here, or None."""
    for daemon in ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol"):
        if shutil.which(daemon, path=SBIN) is None:
            return f"{daemon} is not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test SLURM runs its daemons as root"
    return None


class LocalSlurm:
    def __init__(self, folder: Path, cpus: int = 2):
        self.dir, self.cpus, self.procs = Path(folder), cpus, []
        self.env = {**os.environ, "SLURM_CONF": str(self.dir / "slurm.conf"), "PATH": SBIN}

    def _daemon(self, *argv: str) -> None:
        log = open(self.dir / f"{Path(argv[0]).name}.out", "w")  # noqa: SIM115 (kept open for the daemon)
        self.procs.append(subprocess.Popen([shutil.which(argv[0], path=SBIN), *argv[1:]], stdout=log,
                                           stderr=subprocess.STDOUT, env=self.env, start_new_session=True))

    def start(self) -> LocalSlurm:
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        key = self.dir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        d = self.dir
        self._daemon("munged", "-F", "--force", f"--socket={d}/munge.sock", f"--key-file={key}",
                     f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed")
        self.wait(lambda: (d / "munge.sock").exists(), 30, "munge socket")
        (d / "slurm.conf").write_text(CONF.format(dir=d, cpus=self.cpus, ctld_port=free_port(), d_port=free_port()))
        self._daemon("slurmctld", "-D", "-f", str(d / "slurm.conf"))
        self._daemon("slurmd", "-D", "-f", str(d / "slurm.conf"), "-N", "localhost")
        self.wait(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", 120, "an idle node")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([shutil.which(argv[0], path=SBIN), *argv[1:]], env=self.env, capture_output=True,
                              text=True, timeout=60)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields (``JobState``, ``Reason``, ``Restarts``, ...); {} when unknown."""
        out = self.run("scontrol", "show", "job", "-o", job_id).stdout
        return dict(w.split("=", 1) for w in out.split() if "=" in w)

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                logs = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.dir.glob("*.log*")))
                raise TimeoutError(f"no {what} within {timeout} s (or a daemon died):{logs}")
            time.sleep(0.5)
