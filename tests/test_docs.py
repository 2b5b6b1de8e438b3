"""The docs cannot go stale silently: README.md and docs/*.md link only to files and headings that exist and name
only repository paths that exist; the figures they read from committed results match those results; the benchmark
commands they show use options the scripts have; and the API reference (`make docs`, pdoc) builds without a
warning."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Paths the docs name that a command creates at run time, so a clone does not hold them (most are git-ignored).
# A directory ends in "/" and covers everything under it; a bare file name covers that name anywhere.
RUN_TIME = {
    "runs/": "campaign, design and free-energy output directories (git-ignored)",
    "porelab-store/": "the workspace's measurement store, made by the first MD answer (git-ignored)",
    "mlflow.db": "the workspace's MLflow store, made by the first campaign or `porelab train` (git-ignored)",
    "mlartifacts/": "MLflow's artifacts, beside mlflow.db",
    "models/": "`porelab train --out models/...`: a model directory the reader makes",
    ".venv/": "made by `make install`",
    "build/": "`make docs` writes build/api/ (git-ignored)",
    "data/md/README.md": "written by benchmarks/md_dataset.py once the shared dataset holds a design",
    "data/md/index.csv": "written by benchmarks/md_dataset.py once the shared dataset holds a design",
    "my-study.yaml": "the reader's own study file in a command example",
    "torch.json": "the report `make torch TORCH_PIP_FLAGS=\"--dry-run --report torch.json\"` writes",
    # what one command writes into its output directory (model, design search, free energy, campaign export)
    "model.json": "model directory", "metrics.json": "model directory", "measurement.json": "a run directory",
    "ranked.csv": "design search", "pareto.csv": "design search", "verified.csv": "design search",
    "pareto.png": "design search", "summary.json": "design search", "trials.csv": "campaign export",
    "free_energy.json": "free-energy run",
}
EXTENSIONS = (".py", ".yaml", ".yml", ".md", ".json", ".jsonl", ".txt", ".png", ".csv", ".toml")
GLOB = re.compile(r"[*?\[\]{}]")


@cache
def repo_files() -> frozenset[str]:
    """What a commit of this working tree holds: tracked files and untracked ones git does not ignore."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        return frozenset(f for f in out.split("\0") if f and (ROOT / f).exists())
    except (OSError, subprocess.SubprocessError):  # no git: the tree on disk, less what is never committed
        skip = {".venv", ".git", "runs", "build", "porelab-store", "__pycache__", ".pytest_cache", ".ruff_cache"}
        return frozenset(str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                         if p.is_file() and not skip & set(p.relative_to(ROOT).parts))


@cache
def repo_dirs() -> frozenset[str]:
    return frozenset(str(parent) for f in repo_files() for parent in Path(f).parents if str(parent) != ".")


def run_time(path: str) -> bool:
    return any(path == k or (k.endswith("/") and (path + "/").startswith(k)) for k in RUN_TIME) \
        or ("/" not in path and path in RUN_TIME)


def exists(path: str) -> bool:
    path = path.rstrip("/")
    return path in repo_files() or path in repo_dirs()


def path_problem(word: str) -> str | None:
    """Why `word` (a token of inline code or of a shell command) names a repository path that is not there, or
    None: not a path (a URL, a glob that matches, a placeholder <...>, an option, a variable, prose such as
    1/ICR), a run-time path, or a path that exists."""
    word = word.strip("\"'").lstrip("(").rstrip(",;:)")
    if word.endswith(".") and not word.endswith(".."):  # the end of a sentence
        word = word[:-1]
    if (not word or word.startswith(("-", "http", "~")) or "://" in word or "<" in word or ">" in word
            or "$" in word or "@" in word or any(c.isspace() for c in word) or word in (".", "..")):
        return None
    word = word.removeprefix("./")
    if not ("/" in word or word.endswith(EXTENSIONS)):
        return None
    first = word.split("/")[0]
    if first == "porelab" and "/" in word and not exists(word):
        word = word.removeprefix("porelab/")  # the repository root is the package porelab
        first = word.split("/")[0]
    known_start = exists(first) or run_time(first + "/") or run_time(first)
    if GLOB.search(word):
        if not known_start:
            return None  # a placeholder pattern such as old/*/measurement.json
        pattern = word.rstrip("/")
        hits = [f for f in repo_files() if fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(f, pattern + "/*")]
        return None if hits or run_time(word) else f"{word} (a pattern that matches no file)"
    if not word.endswith(EXTENSIONS) and not known_start:
        return None  # prose with a slash: 1/ICR, MgCl2/CaCl2, name/version
    if run_time(word) or exists(word):
        return None
    return word


def parts(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(fenced code blocks as (language, body), the lines outside them)."""
    blocks, prose, lang, body = [], [], None, []
    for line in text.splitlines():
        fence = re.match(r"^\s*```\s*([\w+-]*)", line)
        if fence and lang is None:
            lang, body = fence[1] or "text", []
        elif fence:
            blocks.append((lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
        else:
            prose.append(line)
    assert lang is None, "an unclosed code fence"
    return blocks, prose


def inline_code(prose: list[str]) -> list[str]:
    """Inline code outside link texts (a link's target is checked as a link: [`ranked.csv`](../runs/...))."""
    text = re.sub(r"\[[^\]]*\]\([^)\s]*\)", "", "\n".join(prose))
    return re.findall(r"`([^`\n]+)`", text)


def shell_words(body: str) -> list[str]:
    words = []
    for line in body.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        words += [t.split("=", 1)[1] if re.match(r"^[A-Za-z_][\w.-]*=", t) else t for t in tokens]
    return words


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the text as rendered, lower case, without punctuation, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in parts(md.read_text())[1]:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m[1])
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def links(prose: list[str]) -> list[str]:
    text = re.sub(r"`[^`\n]+`", "", "\n".join(prose))
    return re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text) \
        + re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", text, re.M)


def md_id(md: Path) -> str:
    return str(md.relative_to(ROOT))


@pytest.mark.parametrize("md", DOCS, ids=md_id)
def test_links_reach_files_and_headings(md):
    bad = []
    for target in links(parts(md.read_text())[1]):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists() or not dest.is_relative_to(ROOT):
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)} (has {sorted(anchors(dest))})")
    assert not bad, f"{md_id(md)}: dead links:\n" + "\n".join(bad)


@pytest.mark.parametrize("md", DOCS, ids=md_id)
def test_named_paths_exist(md):
    """Every repository path in inline code and in shell blocks exists (or is made at run time: RUN_TIME)."""
    blocks, prose = parts(md.read_text())
    words = [w for code in inline_code(prose) for w in code.split()]
    words += [w for lang, body in blocks if lang in ("bash", "sh", "shell", "console") for w in shell_words(body)]
    bad = sorted({p for w in words if (p := path_problem(w))})
    assert not bad, f"{md_id(md)} names paths that are not in the repository: {bad}"


def test_the_checker_tells_paths_from_prose():
    assert path_problem("sim/store.py") is None and path_problem("porelab/sim/store.py") is None
    assert path_problem("campaign/targets.py") == "campaign/targets.py"  # a path inside active_learning/
    assert path_problem("benchmarks/results/nope.json") == "benchmarks/results/nope.json"
    assert path_problem("benchmarks/results/free_energy_tiny_*") is None
    assert path_problem("benchmarks/results/nothing_*") is not None
    for prose in ("1/ICR", "name/version", "MgCl₂/CaCl₂", "runs/quickstart", "runs/design-<name>/", "--out",
                  "http://127.0.0.1:5000", "old/*/measurement.json", "$PORELAB_STORE", "ranked.csv"):
        assert path_problem(prose) is None, prose
    assert slug("§3 Currents, their estimators") == "3-currents-their-estimators"
    assert slug("Every MD result is kept: the `measurement store`") == "every-md-result-is-kept-the-measurement-store"


TWO_COMMANDS = ("make demo    # creates .venv, installs porelab (CPU), runs the main job on this machine\n"
                "make test    # creates .venv, installs porelab, runs the test suite (pytest, 2 processes)")


def test_readme_opens_with_the_two_commands():
    assert parts(README.read_text())[0][0] == ("bash", TWO_COMMANDS)


RUN = ROOT / "benchmarks/results/demo_run.txt"


def test_demo_wall_time_is_the_recorded_one():
    """README's "≈ N min" for `make demo` is the wall time in the header of the committed run."""
    m = re.search(r"real (\d+)m([\d.]+)s", RUN.read_text().splitlines()[0])
    assert m, f"no 'real XmY.Zs' in the header of {RUN.name}"
    minutes = int(m[1]) + float(m[2]) / 60
    stated = [int(n) for n in re.findall(r"≈ (\d+) min", README.read_text())]
    assert stated, "README states no '≈ N min' for make demo"
    assert all(n == round(minutes) for n in stated), f"README says ≈ {stated} min; the record: {minutes:.1f} min"


def test_demo_output_shown_is_the_recorded_output():
    """Each line of README's `text` block (the demo's output) is part of a line of the committed run."""
    shown = [body for lang, body in parts(README.read_text())[0] if lang == "text"]
    assert shown, "README shows no demo output"
    recorded = RUN.read_text()
    missing = [ln for body in shown for ln in body.splitlines()
               if ln.strip() and ln.strip() != "..." and ln.rstrip() not in recorded]
    assert not missing, f"lines not in {RUN.relative_to(ROOT)}:\n" + "\n".join(missing)


def test_benchmark_commands_use_options_the_scripts_have():
    bad = []
    for md in DOCS:
        for lang, body in parts(md.read_text())[0]:
            if lang not in ("bash", "sh"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                words = shell_words(line)
                script = next((w for w in words if re.fullmatch(r"benchmarks/\w+\.py", w)), None)
                if script is None or not (ROOT / script).exists():
                    continue
                source = (ROOT / script).read_text()
                bad += [f"{md_id(md)}: {script} {w}" for w in words[words.index(script) + 1:]
                        if w.startswith("--") and f'"{w.split("=")[0]}"' not in source]
    assert not bad, "options the scripts do not define:\n" + "\n".join(bad)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.skipif(importlib.util.find_spec("pdoc") is None, reason="pdoc is not installed (make install installs it)")
def test_api_reference_builds_without_warnings(tmp_path):
    """`make docs` into a temporary directory: pdoc's HTML reference of the public modules, no warning."""
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "api"
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), "docs", f"BIN={bin_dir}",
                        f"API_DIR={out}", "-o", f"{bin_dir}/porelab"],  # -o: build, never install
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ("porelab/api.html", "porelab/sim.html", "porelab/active_learning/campaign/driver.html"):
        assert (out / page).exists(), page
