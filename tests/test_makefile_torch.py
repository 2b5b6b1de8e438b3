"""The Makefile's choice of torch build (`make torch`): the CPU wheel index on a CPU-only machine, the configured
index when that one cannot be reached or TORCH_INDEX is empty, the registry's default (CUDA) build and the `cuda`
extra where nvidia-smi lists a GPU. pip and nvidia-smi are stand-ins that record what they were asked; the
"CPU index" is a local HTTP server, so nothing is downloaded."""

import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

GPU_LIST = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-000000000000)"
NO_DEVICE = "No devices were found"


class _Index(BaseHTTPRequestHandler):
    """A PEP 503 index that knows one project: torch."""

    def do_GET(self):  # noqa: N802 (the http.server name)
        found = self.path.rstrip("/").endswith("/torch")
        self.send_response(200 if found else 404)
        self.end_headers()
        self.wfile.write(b"<html><body><a href='torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl'>torch</a></body></html>")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def index_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()
    server.server_close()


def closed_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/whl/cpu"  # nothing listens once the socket is closed


def make_torch(tmp_path: Path, nvidia_smi: str, *overrides: str) -> tuple[str, list[str]]:
    """Run `make torch` with a stand-in nvidia-smi (printing `nvidia_smi`, failing when it is NO_DEVICE) and a pip
    that records its arguments; (make's output, the pip arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "pip_args"
    calls.unlink(missing_ok=True)
    (bin_dir / "pip").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{calls}"\n')
    code = 6 if nvidia_smi == NO_DEVICE else 0
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{nvidia_smi}\nEOF\nexit {code}\n")
    for f in ("pip", "nvidia-smi"):
        (bin_dir / f).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("GPU", "TORCH_INDEX", "EXTRAS", "MAKEFLAGS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), "torch", f"BIN={bin_dir}",
                        f"PY={sys.executable}", *overrides], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, calls.read_text().split() if calls.exists() else []


def test_cpu_only_takes_the_cpu_index_when_it_answers(tmp_path, index_url):
    out, args = make_torch(tmp_path, NO_DEVICE, f"TORCH_INDEX={index_url}")
    assert "NVIDIA GPU: no; extras: [dev]" in out
    assert args == ["install", "-q", "--index-url", index_url, "torch==2.13.0"], args


def test_cpu_only_falls_back_to_the_configured_index_when_the_cpu_index_cannot_be_reached(tmp_path):
    url = closed_url()
    out, args = make_torch(tmp_path, NO_DEVICE, f"TORCH_INDEX={url}")
    assert f"from the configured index ({url} cannot be reached)" in out
    assert args == ["install", "-q", "torch==2.13.0"], args


def test_the_default_cpu_index_is_pytorchs(tmp_path):
    """Without overrides a CPU-only machine asks PyTorch's CPU index (shown with `make -n`: nothing runs)."""
    out, _ = make_torch(tmp_path, NO_DEVICE, "-n")
    assert '"https://download.pytorch.org/whl/cpu" "torch==2.13.0"' in out, out


def test_empty_torch_index_means_the_configured_index(tmp_path, index_url):
    out, args = make_torch(tmp_path, NO_DEVICE, "TORCH_INDEX=")
    assert "torch==2.13.0 from the configured index\n" in out
    assert args == ["install", "-q", "torch==2.13.0"], args


def test_a_gpu_gets_the_default_cuda_build_and_the_cuda_extra(tmp_path, index_url):
    out, args = make_torch(tmp_path, GPU_LIST)
    assert "NVIDIA GPU: yes; extras: [dev,cuda]" in out and "from the configured index\n" in out
    assert args == ["install", "-q", "torch==2.13.0"], args


def test_a_driver_older_than_cuda_13_gets_a_note(tmp_path):
    header = "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |"
    out, args = make_torch(tmp_path, f"{GPU_LIST}\n{header}")
    assert "runs CUDA 12 at most; torch 2.13's default build needs CUDA 13" in out, out
    out, _ = make_torch(tmp_path, f"{GPU_LIST}\n{header.replace('12.4', '13.0')}")
    assert "note:" not in out, out


def test_the_detection_can_be_overridden(tmp_path, index_url):
    out, args = make_torch(tmp_path, NO_DEVICE, "GPU=yes")
    assert "NVIDIA GPU: yes; extras: [dev,cuda]" in out and args == ["install", "-q", "torch==2.13.0"], args
    out, args = make_torch(tmp_path, GPU_LIST, "GPU=", f"TORCH_INDEX={index_url}")
    assert "NVIDIA GPU: no; extras: [dev]" in out and "--index-url" in args, args
    out, _ = make_torch(tmp_path, GPU_LIST, "EXTRAS=dev,cuda12")
    assert "NVIDIA GPU: yes; extras: [dev,cuda12]" in out


def test_dry_run_flags_reach_pip(tmp_path, index_url):
    """`make torch TORCH_PIP_FLAGS=...` is how the choice is checked with `pip install --dry-run --report`."""
    _, args = make_torch(tmp_path, NO_DEVICE, f"TORCH_INDEX={index_url}", "TORCH_PIP_FLAGS=--dry-run --report r.json")
    assert args == ["install", "-q", "--dry-run", "--report", "r.json", "--index-url", index_url, "torch==2.13.0"]
