"""``hwgrader bundle gradescope OUT.zip``: a Gradescope autograder zip built from a rubric.

The zip's root (Gradescope extracts it to ``/autograder/source``)::

    setup.sh               build step: python3-venv + bubblewrap (apt), hwgrader into a venv
    run_autograder         per submission: grade, always leave results/results.json
    hwgrader-bundle.json   the runner's settings (rubric path, timeout, isolation, points)
    requirements.txt       hwgrader's runtime dependencies
    dist/hwgrader-V-py3-none-any.whl   hwgrader itself, built from the running package
    wheels/                the dependencies as wheels for Gradescope's image (``--deps wheels``)
    assignment/rubric.yaml, assignment/reference/   the rubric and its reference package

``--deps wheels`` (default) downloads the dependencies' wheels now, with
``pip download`` for the target image (Ubuntu 22.04: CPython 3.10,
manylinux x86_64), so the image build installs with ``--no-index``: it does
not depend on PyPI being reachable or on what PyPI serves that day, and
every rebuild gets the same versions. ``--deps pypi`` leaves them out (a
zip of ~100 kB instead of ~60 MB); setup.sh then installs them from PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader import __version__
from grader.errors import HwgraderError, UsageError
from grader.integrations.autograder import CONFIG_NAME, DEFAULT_TIMEOUT
from grader.outputs.atomic import write_bytes_atomic

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../grader
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEPS_MODES = ("wheels", "pypi")
#: Gradescope's default base image: Ubuntu 22.04 (glibc 2.35) with CPython 3.10 on x86_64.
DEFAULT_PYTHON_VERSION = "3.10"
DEFAULT_PLATFORM = "manylinux_2_35_x86_64"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # reproducible zips


class BundleError(HwgraderError):
    """The bundle could not be built (no wheels for the target, unreadable reference package...)."""

    exit_code = 2


@dataclass
class BundleInfo:
    path: Path
    size: int
    autograder_points: float
    written_points: dict[str, float]
    deps: str
    files: list[str]


def runtime_requirements() -> list[str]:
    """hwgrader's runtime dependencies: from the checkout's pyproject.toml, else the installed metadata."""
    pyproject = PACKAGE_DIR.parent / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10
            tomllib = None
        if tomllib is not None:
            return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return [r for r in requires("hwgrader") or [] if "extra ==" not in r]
    except PackageNotFoundError:
        raise BundleError("cannot tell hwgrader's dependencies: no pyproject.toml beside the package "
                          "and hwgrader is not installed") from None


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(out_dir: Path, requirements: list[str]) -> Path:
    """A pure-Python wheel (PEP 427) of the running ``grader`` package, with its package data.

    Built here rather than with ``pip wheel`` so bundling needs no build backend
    and no package index, and the bundle carries exactly the code that built it.
    """
    dist_info = f"hwgrader-{__version__}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(PACKAGE_DIR.rglob("*")):
        rel = path.relative_to(PACKAGE_DIR.parent)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        files.append((rel.as_posix(), path.read_bytes()))
    metadata = "\n".join(["Metadata-Version: 2.1", "Name: hwgrader", f"Version: {__version__}",
                          "Summary: Sandboxed, numerically-aware autograder for the deep-learning homework",
                          "Requires-Python: >=3.10", *(f"Requires-Dist: {r}" for r in requirements)]) + "\n"
    files += [(f"{dist_info}/METADATA", metadata.encode()),
              (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: hwgrader bundle\n"
                                     b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
              (f"{dist_info}/entry_points.txt", b"[console_scripts]\nhwgrader = grader.cli:main\n"),
              (f"{dist_info}/top_level.txt", b"grader\n")]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    out = Path(out_dir) / f"hwgrader-{__version__}-py3-none-any.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return out


_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def compatible_platforms(platform: str) -> list[str]:
    """Every wheel platform a ``manylinux_2_N_arch`` system runs (pip does not expand the list itself).

    ``manylinux_2_35_x86_64`` -> manylinux_2_35_x86_64, ..., manylinux_2_17_x86_64, manylinux2014_x86_64,
    ..., manylinux1_x86_64. Any other platform tag is taken as it is.
    """
    m = _MANYLINUX.match(platform)
    if not m:
        return [platform]
    major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    out = []
    for n in range(minor, 4, -1):
        out.append(f"manylinux_{major}_{n}_{arch}")
        if (major, n) in _LEGACY_MANYLINUX:
            out.append(f"{_LEGACY_MANYLINUX[(major, n)]}_{arch}")
    return out


def download_wheels(requirements_file: Path, out_dir: Path, python_version: str, platform: str) -> None:
    """``pip download`` binary wheels of the dependencies for the target image."""
    platforms = [arg for p in compatible_platforms(platform) for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
           *platforms, "--dest", str(out_dir), "-r", str(requirements_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise BundleError(f"could not download the dependencies' wheels for Python {python_version} on "
                          f"{platform}: {last} (build with --deps pypi to let setup.sh install from PyPI)")


def _assignment(rubric_path: Path, reference_dir: Path, out: Path) -> None:
    """The rubric with its ``reference:`` key pointing at the copy of the reference package beside it."""
    out.mkdir(parents=True, exist_ok=True)
    text = rubric_path.read_text(encoding="utf-8")
    new, count = re.subn(r"(?m)^reference:[^\n]*$", "reference: reference", text)
    if count != 1:
        import yaml

        data = yaml.safe_load(text)
        data["reference"] = "reference"
        new = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    (out / "rubric.yaml").write_text(new, encoding="utf-8")
    shutil.copytree(reference_dir, out / "reference",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


def _zip_dir(folder: Path) -> bytes:
    """The folder's files at the zip's root (Gradescope wants setup.sh there, not in a subfolder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), _FIXED_TIME)
            info.external_attr = ((0o755 if path.stat().st_mode & 0o111 else 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def build_bundle(out_zip: Path, rubric_path: Path, *, deps: str = "wheels",
                 python_version: str = DEFAULT_PYTHON_VERSION, platform: str = DEFAULT_PLATFORM,
                 isolation: str = "auto", timeout: Optional[float] = None) -> BundleInfo:
    """Validate the rubric (its plan must build), assemble the bundle and write the zip atomically."""
    from grader.assignment.plan import build_plan
    from grader.assignment.rubric import load_rubric

    if deps not in DEPS_MODES:
        raise UsageError(f"--deps must be one of {', '.join(DEPS_MODES)}, got {deps!r}")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout:g}")
    out_zip = Path(out_zip)
    if out_zip.suffix.lower() != ".zip":
        raise UsageError(f"{out_zip}: the bundle must be a .zip file")
    rubric = load_rubric(rubric_path)
    plan = build_plan(rubric)  # a broken rubric or reference fails now, not in Gradescope's container
    questions = [{"id": q.id, "title": q.title,
                  "code_points": round(sum(c.points for c in q.cases), 6),
                  "written_points": q.written.points if q.written else 0} for q in plan.questions]
    code_points = round(sum(q["code_points"] for q in questions), 6)
    limits = plan.limits
    config = {"format": "hwgrader-gradescope-bundle/1", "hwgrader_version": __version__,
              "title": plan.title, "rubric": "assignment/rubric.yaml", "isolation": isolation,
              "timeout": timeout or min(DEFAULT_TIMEOUT, limits.load_seconds + limits.submission_seconds + 120),
              "autograder_points": code_points, "questions": questions, "deps": deps}
    requirements = runtime_requirements()
    with tempfile.TemporaryDirectory(prefix="hwgrader-bundle-") as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        for name in ("setup.sh", "run_autograder"):
            shutil.copyfile(TEMPLATES / name, root / name)
            (root / name).chmod(0o755)
        (root / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (root / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        build_wheel(root / "dist", requirements)
        if deps == "wheels":
            download_wheels(root / "requirements.txt", root / "wheels", python_version, platform)
        _assignment(rubric.path, rubric.reference_dir, root / "assignment")
        data = _zip_dir(root)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_zip, data)
    return BundleInfo(out_zip, len(data), code_points,
                      {q["id"]: q["written_points"] for q in questions if q["written_points"]}, deps, files)
