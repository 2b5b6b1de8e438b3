"""A one-node Slurm cluster on localhost for the tests that ask for the `slurm` fixture (tests/cluster/slurm.sh):
started once per test session, shared by pytest-xdist's workers, stopped when the last of them ends. Where it
cannot be had (no Slurm and no root to install it, a daemon that does not start) those tests skip, saying why."""

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "active_learning"))  # al_helpers: the small studies

SCRIPT = Path(__file__).with_name("slurm.sh")


@dataclass(frozen=True)
class Slurm:
    """The running test cluster: its directory (slurm.conf, logs, jobcomp.txt); SLURM_CONF is set for the session."""

    dir: Path

    def run(self, *args: str) -> str:
        """A Slurm command's output (sbatch, squeue, scancel, ...)."""
        return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout

    def jobs(self, name: str) -> dict[str, dict]:
        """The finished jobs named `name` by job id, as the scheduler recorded them (jobcomp/filetxt: one line of
        key=value pairs per job)."""
        path = self.dir / "jobcomp.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        rows = [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in lines]
        return {r["JobId"]: r for r in rows if r.get("Name") == name}

    def finished_jobs(self, name: str, timeout: float = 60) -> dict[str, dict]:
        """`jobs(name)` once no job of that name is queued or running any more (each is recorded as it ends, a
        little after the scancel of a cluster's close)."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-o", "%i", f"--name={name}").strip():
            assert time.monotonic() < deadline, f"jobs named {name} still queued or running after {timeout} s"
            time.sleep(0.5)
        return self.jobs(name)


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """The Slurm test cluster (Slurm), up for the session; skips the test with the reason where it cannot start."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # one per session, not per worker
    d, users, skipped = shared / "slurm", shared / "slurm.users", shared / "slurm.skip"
    with _locked(shared / "slurm.lock"):
        if skipped.exists():
            pytest.skip(skipped.read_text())
        n = int(users.read_text()) if users.exists() else 0
        if n == 0:
            up = _script("up", str(d))
            if up.returncode != 0:
                why = (up.stderr.strip() or f"slurm.sh up exited {up.returncode}").splitlines()[-1]
                skipped.write_text(f"no Slurm test cluster: {why}")
                _script("down", str(d))
                pytest.skip(skipped.read_text())
        users.write_text(str(n + 1))
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(d / "slurm.conf")
    yield Slurm(d)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    with _locked(shared / "slurm.lock"):
        n = int(users.read_text()) - 1
        users.write_text(str(n))
        if n == 0:
            _script("down", str(d))
