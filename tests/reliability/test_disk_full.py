"""Disk full (ENOSPC injected at a write, or a real full tmpfs) and a read-only campaign directory: a one-line
error, nothing half-written taken for a result, and `resume` finishes the campaign once the disk is fixed."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest
from rel_helpers import check_campaign, porelab, small_study, snapshot

from porelab.base.files import is_temp

pytestmark = pytest.mark.reliability


def one_line_error(rc: int, out: str, *needles: str) -> None:
    assert rc == 2 and "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") or lines[0].startswith("error:"), out
    err = " ".join(" ".join(lines[[ln.startswith("error:") for ln in lines].index(True):]).split())
    for n in needles:
        assert n in err, err


def no_temp_results(d) -> None:
    """No temp file sits where a result is read, and every run directory's result is whole JSON."""
    for f in d.rglob("*"):
        assert not (is_temp(f) and f.parent.name.startswith("step_")), f
    snapshot(d)  # raises on a torn measurement.json


@pytest.mark.parametrize("fault, where", [
    ("atomic_write:model.json:1:enospc", "model.json"),  # the driver saving a model
    ("atomic_write:measurement.json:2:enospc", "measurement.json"),  # a worker saving a result
])
def test_disk_full_stops_with_one_line_and_resume_finishes(tmp_path, fault, where):
    study = small_study(tmp_path)
    d = tmp_path / "ws" / "camp"
    rc, out = porelab("campaign", "run", str(study), "--dir", str(d), "--quiet", "--no-tracking", fault=fault,
                      cwd=tmp_path)
    one_line_error(rc, out, "No space left on device", where)
    no_temp_results(d)
    from porelab.active_learning.campaign.ledger import Ledger

    led = Ledger(d / "ledger.sqlite")
    counts = led.counts()
    led.close()
    assert counts["failed"] == 0 and counts["abandoned"] == 0  # the disk's fault is no design's failure
    rc, out = porelab("campaign", "resume", str(d), "--quiet", "--no-tracking", cwd=tmp_path)
    assert rc == 0, out
    check_campaign(d, 9, tracking=False)


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"porelab-{uuid.uuid4().hex[:6]}", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_real_full_disk_and_read_only_directory(tmp_path):
    """The campaign directory on a small tmpfs: filled up, then remounted read-only (chmod does not stop root)."""
    d = tmp_path / "ws" / "camp"
    if not _mount_tmpfs(d, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount)")
    try:
        study = small_study(tmp_path)
        rc, out = porelab("campaign", "run", str(study), "--dir", str(d), "--quiet", "--no-tracking", cwd=tmp_path,
                          fault="campaign.train:1")
        assert rc == -9, out  # killed after the initial design, so that there is work left
        before = snapshot(d)
        filler = d / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until ENOSPC
        rc, out = porelab("campaign", "resume", str(d), "--quiet", "--no-tracking", cwd=tmp_path)
        one_line_error(rc, out)
        assert "No space left on device" in out or "disk is full" in out, out
        no_temp_results(d)
        assert {k: v for k, v in snapshot(d).items() if k in before} == before
        filler.unlink()

        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
        rc, out = porelab("campaign", "resume", str(d), "--quiet", "--no-tracking", cwd=tmp_path)
        one_line_error(rc, out)
        assert "read-only" in out.lower() or "readonly" in out.lower(), out
        subprocess.run(["mount", "-o", "remount,rw", str(d)], check=True)

        rc, out = porelab("campaign", "resume", str(d), "--quiet", "--no-tracking", cwd=tmp_path)
        assert rc == 0, out
        check_campaign(d, 9, tracking=False)
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
