"""The sandbox wherever Python is installed: build an install layout, grade the red-team batch in it.

Each test makes one layout from scratch and runs, with that layout's Python, one red-team
batch at the level the layout must reach (``HWGRADER_REQUIRE_ISOLATION``: a skip would be a
failure), the check that the default level *is* that level, and ``hwgrader grade`` with the
default options on two submissions (the level printed before grading, and recorded in
results.json). Layouts:

* ``venv_under_tmp``: the project installed (editable) in a venv under /tmp, as root:
  the sandbox's fresh /tmp must not hide the venv (it used to: silent fallback to ``process``).
* ``venv_containing_checkout``: ``python -m venv X; cp -r checkout X/hwgrader; pip install -e``:
  nothing of X but the packages the worker needs may be visible (it used to bind all of X).
* ``ordinary_user``: a user made with ``useradd``, with its own venv and copy of the checkout,
  grading with ``bwrap`` and a user namespace per worker.

Slow (a venv, a pip install from the local wheel cache and a red-team batch each: ~1.5 min),
needs root (to create the user and for bwrap-fork) and bubblewrap.

    python -m pytest -m slow tests/test_layouts.py
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from grader.sandbox.layout import readable_by_others

pytestmark = [pytest.mark.slow, pytest.mark.redteam]

ROOT = Path(__file__).resolve().parents[1]
USER = "hwgrader-ci"
#: What a layout's venv needs to grade and to run the red-team test (hwgrader's own runtime deps).
REQUIREMENTS = ["numpy>=1.24", "cvxopt>=1.3", "jinja2>=3.1", "pyyaml>=6.0", "scipy>=1.10", "nbformat>=5.9",
                "pyseccomp>=0.1.2", "pytest>=7.4", "setuptools>=68", "wheel"]
#: Folders of the checkout a layout needs (no reports, no caches, no .git).
COPY = ["grader", "reference", "rubrics", "submissions", "tests", "pyproject.toml", "README.md"]


def _need_root_and_bwrap():
    if os.geteuid() != 0:
        pytest.skip("builds users and runs bwrap-fork: needs root")
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed")


def _run(argv, *, user=None, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    if user is not None:
        argv = ["runuser", "-u", user, "--"] + argv
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc


def _ok(proc: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    out = proc.stdout if len(proc.stdout) < 8000 else proc.stdout[:5000] + "\n...\n" + proc.stdout[-2000:]
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out}\n{proc.stderr[-3000:]}"
    return proc


def _copy_checkout(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _closure(names: list[str]) -> list:
    """Installed distributions ``names`` need (their requirements, transitively; extras ignored)."""
    from importlib import metadata
    import re

    seen, todo, out = set(), list(names), []
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        out.append(dist)
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.match(r"[A-Za-z0-9._-]+", req).group(0))
    return out


def _link_packages(site_dir: Path, owner: str | None = None) -> None:
    """Put hwgrader's runtime packages and pytest into a venv's own site-packages, fast: hard links
    to the files of this interpreter's installed distributions (same Python minor version), so the
    layout's numpy/scipy/cvxopt really live inside the venv."""
    base = Path(sysconfig.get_path("purelib")).resolve()
    for dist in _closure(["numpy", "scipy", "cvxopt", "jinja2", "pyyaml", "nbformat", "pyseccomp", "pytest"]):
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel)).resolve()
            try:
                inside = src.relative_to(base)
            except ValueError:
                continue  # a console script in bin/, ...
            dest = site_dir / inside
            if dest.exists() or not src.is_file():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
    for folder, dirs, _ in os.walk(site_dir):
        os.chmod(folder, 0o755)
        if owner is not None:
            shutil.chown(folder, owner, owner)


def _site_packages(python: str, *, user=None) -> Path:
    out = _ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], user=user), "purelib")
    return Path(out.stdout.strip())


def _same_minor(python: str) -> bool:
    out = _ok(_run([python, "-c", "import sys; print(sys.version_info[:2])"]), "python -V")
    return out.stdout.strip() == str(sys.version_info[:2])


def _wheels(python: str) -> Path:
    """A world-readable folder of wheels for ``python``'s venv (from root's pip cache when warm)."""
    folder = Path(tempfile.gettempdir()) / f"hwgrader-layout-wheels-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o755)
    _ok(_run([python, "-m", "pip", "download", "-q", "-d", str(folder), *REQUIREMENTS]), "pip download")
    for f in folder.iterdir():
        os.chmod(f, 0o644)
    return folder


def _venv(base_python: str, where: Path, *, user=None) -> str:
    _ok(_run([base_python, "-m", "venv", str(where)], user=user), "python -m venv")
    return str(where / "bin" / "python")


def _install(python: str, *, user=None, editable: Path | None = None) -> None:
    """The venv gets its own copies of the packages (hard links when the Python minor version is
    this one's: seconds instead of minutes of pip), then, if asked, an editable install of the
    checkout (its ``__editable__`` finder and .pth next to numpy)."""
    if _same_minor(python):
        _link_packages(_site_packages(python, user=user), owner=user)
        wheels = None
    else:
        wheels = _wheels(python)
        _ok(_run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), *REQUIREMENTS],
                 user=user), "pip install (requirements)")
    if editable is not None:
        _ok(_run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(editable)], user=user),
            "pip install -e")


def _grade_in_layout(python: str, checkout: Path, level: str, *, user=None, home=None) -> None:
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": home or os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "HWGRADER_REQUIRE_ISOLATION": level}
    tests = [f"tests/test_redteam.py::test_redteam_batch[{level}]",
             "tests/test_session.py::test_required_isolation_is_the_default_here"]
    proc = _run([python, "-m", "pytest", "-q", "--tb=short", "-p", "no:cacheprovider", "-rxXs", *tests],
                user=user, cwd=checkout, env=env)
    (checkout / "layout-redteam.log").write_text(proc.stdout + proc.stderr)
    _ok(proc, f"the red-team batch under {level}")
    assert "2 passed" in proc.stdout, proc.stdout[-3000:]  # neither skipped nor xfailed
    # the CLI with default options: the level is printed before grading and recorded
    subs, out = checkout / "layout-subs", checkout / "layout-out"
    subs.mkdir()
    shutil.copy(checkout / "submissions" / "correct_module.py", subs / "alice.py")
    shutil.copy(checkout / "tests" / "attacks" / "read_reference_abs.py", subs / "mallory.py")
    if user is not None:
        shutil.chown(subs, user, user)
        for f in subs.iterdir():
            shutil.chown(f, user, user)
    proc = _ok(_run([python, "-m", "grader", "grade", str(subs), "--out", str(out)], user=user, cwd=checkout,
                    env=env), "hwgrader grade")
    assert f"hwgrader: isolation: {level}" in proc.stderr.splitlines()[0], proc.stderr[:500]
    alice = json.loads((out / "alice" / "results.json").read_text())
    assert alice["extra_data"]["isolation"] == level
    assert alice["score"] > 0
    mallory = json.loads((out / "mallory" / "results.json").read_text())
    assert mallory["extra_data"]["isolation"] == level


@pytest.fixture
def scratch():
    path = Path(tempfile.mkdtemp(prefix="hwgrader-layout-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def test_venv_under_tmp(scratch):
    _need_root_and_bwrap()
    checkout = _copy_checkout(scratch / "checkout")
    python = _venv(_base_python(), scratch / "venv")
    _install(python, editable=checkout)
    _grade_in_layout(python, checkout, "bwrap-fork")


def test_venv_containing_checkout(scratch):
    _need_root_and_bwrap()
    venv = scratch / "X"
    python = _venv(_base_python(), venv)
    checkout = _copy_checkout(venv / "hwgrader")
    _install(python, editable=checkout)
    _grade_in_layout(python, checkout, "bwrap-fork")


def test_ordinary_user_with_own_venv():
    _need_root_and_bwrap()
    try:
        pwd.getpwnam(USER)
    except KeyError:
        _ok(_run(["useradd", "--create-home", "--shell", "/bin/sh", USER]), "useradd")
    home = Path(pwd.getpwnam(USER).pw_dir)
    # the test's own Python (pyenv under /root is not world-readable), else the system's python3
    candidates = [_base_python(), "/usr/bin/python3", shutil.which("python3")]
    base = next((c for c in candidates if c and readable_by_others(os.path.realpath(c))), None)
    if base is None:
        pytest.fail("no Python an ordinary user can run (the test's own is not world-readable, no python3)")
    work = home / f"layout-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        checkout = _copy_checkout(work / "hwgrader")
        _ok(_run(["chown", "-R", f"{USER}:{USER}", str(work)]), "chown")
        python = _venv(base, work / "venv", user=USER)
        _install(python, user=USER)
        _grade_in_layout(python, checkout, "bwrap", user=USER, home=str(home))
    finally:
        shutil.rmtree(work, ignore_errors=True)
