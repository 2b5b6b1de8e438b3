"""The installed distribution is one package, `porelab`: nothing else at the top of site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_only_porelab(tmp_path):
    # copy the sources that a wheel is built from (a build in place would leave build/ in the checkout)
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(tmp_path / "src.tar"),
                    "HEAD"], check=True)
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "src.tar"), "-C", str(src)], check=True)
    for rel in ("pyproject.toml", "__init__.py", "api.py", "py.typed"):  # the working tree's, if changed
        if (ROOT / rel).exists():
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                        "-w", str(tmp_path / "wheel")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    (wheel,) = (tmp_path / "wheel").glob("porelab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"porelab"}
    for pkg in ("porelab/sim/__init__.py", "porelab/surrogate/__init__.py", "porelab/active_learning/__init__.py",
                "porelab/sim/free_energy/__init__.py", "porelab/api.py", "porelab/py.typed",
                "porelab/surrogate/pyfunc.py"):
        assert pkg in names, pkg
    assert not any(n.startswith(("porelab/tests/", "porelab/benchmarks/")) for n in names)


def test_load_design_does_not_load_the_campaign_stack():
    """`from porelab import load_design` stays light (measured: 0.2-0.3 s, 32 MB against 3.0 s, 254 MB when it
    imported the campaign driver): no pandas, sklearn, matplotlib, torch or campaign driver until asked for."""
    code = ("import sys; from porelab import load_design; "
            "heavy = [m for m in ('pandas', 'sklearn', 'matplotlib', 'torch', 'statsmodels', "
            "'porelab.active_learning.campaign.driver') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
