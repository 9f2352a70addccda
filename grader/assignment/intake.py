"""Intake: from what an instructor downloaded to one ``SubmissionSource`` per student.

``discover(sources)`` walks each SOURCE (a folder at any depth, a single
``.py``/``.ipynb`` file, or a ``.zip``) and returns an ``Intake``: the
submissions to grade, one per student, and an ``IntakeEntry`` for every
thing found and what became of it (``DIR/intake.csv``). Nothing found here
runs: files are only read (and notebooks and modules parsed by
``grader.assignment.submission``). The rules, in the order they apply:

Reading
  * Symbolic links are never followed (``lstat``, ``O_NOFOLLOW`` on every
    open, folders walked through their file descriptors): a link is
    ``rejected``. Nothing outside the SOURCE is read. A SOURCE named on the
    command line may itself be a link: the user chose it.
  * ``.zip`` files are read in memory, never extracted: members with an
    absolute or ``..`` path, links and encrypted members are ``rejected``; a
    zip over ``ZIP_MAX_MEMBERS`` members, ``ZIP_MAX_TOTAL_BYTES`` uncompressed
    or with a member compressed more than ``ZIP_MAX_RATIO`` times, or that is
    not a readable zip, is ``rejected`` whole, with the reason; zips inside
    zips are read down to ``ZIP_MAX_DEPTH``.
  * ``.py`` and ``.ipynb`` in any case are code; dot files and folders,
    ``__MACOSX``, ``__pycache__`` and Jupyter checkpoints are ``ignored``
    (their contents are not searched), and so is every other file.

Layouts (recognised at any depth)
  * Canvas: ``name_[LATE_]userid_submissionid_file``; every file with the
    same ``name_userid`` prefix is one submission (zips of it included).
  * Moodle: ``Full Name_id_assignsubmission_file_/...`` folders, or the flat
    ``Full Name_id_assignsubmission_file_name`` files.
  * Gradescope export: a ``submission_metadata.yml`` beside
    ``submission_ID/`` folders names each folder's submitters.
  * Folder per student: a folder below a SOURCE (or a zip) is one student's
    submission, all its code files at any depth its modules -- unless it is
    a grouping folder: it holds an LMS download, or two of its code files
    define the same homework function (a class folder), or it has no code
    file of its own and several sub-folders with code (a section).
  * A code file directly in a SOURCE folder is a student of its own; the
    SOURCE folder itself is one student only when its code files import
    each other and no two of them define the same homework function
    (``hwgrader grade alice/``).

One student, one submission
  * ``x.py`` beside ``x.ipynb``: the notebook is graded (it carries the
    markdown answers; the ``.py`` is usually its export), the ``.py`` is
    ``superseded``. Inside one submission, several notebooks: the newest.
    Canvas renames a re-uploaded ``hw.py`` to ``hw-1.py``, ``hw-2.py``:
    the highest number is graded, the others are ``superseded``.
  * When several submissions have the same ``<student>``, the newest is
    graded and the others ``superseded``: by the LMS's own order first
    (Canvas: ``LATE`` is after the deadline, so newer; a higher ``-N``
    resubmission number; Gradescope: ``:created_at:``), then the newest
    modification time of its files (for zip members their stored date,
    which Moodle sets to the upload time), then a notebook before a module.

Identity
  * ``<student>`` is the file name without extension (a folder's or zip's
    name), when that is a safe folder name: letters (any script), digits,
    ``_`` and ``-``, no dot, not a reserved name (``RESERVED_NAMES``, the
    class files and folders under ``--out``). Otherwise it is a safe form
    of the name plus ``~`` and 8 hex digits of a hash of its original
    bytes: stable across re-runs and unique, and never equal to a safe name
    (those contain no ``~``). For an LMS download it is ``Name_ID`` (the
    LMS's student id), made safe the same way. The display name (what the
    LMS or the file called the student) is kept for reports.
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import io
import json
import os
import re
import stat
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterable, Optional, Sequence

from grader.errors import UsageError

CODE_SUFFIXES = (".py", ".ipynb")
#: A code file larger than this is ``rejected`` (``submission.MAX_SOURCE_BYTES`` is the same cap).
MAX_CODE_BYTES = 5_000_000
#: A student's submission with more code than this (all its files) is ``rejected``.
MAX_SUBMISSION_BYTES = 20_000_000
#: A student's submission with more code files than this is ``rejected``.
MAX_SUBMISSION_FILES = 200
#: Folders nested deeper than this below a SOURCE are ``rejected`` (not searched).
MAX_DEPTH = 32
#: Zip caps: members, total uncompressed bytes, uncompressed/compressed ratio of one member
#: (above ``ZIP_RATIO_MIN_BYTES``), and how many zips inside zips are opened.
ZIP_MAX_MEMBERS = 10_000
ZIP_MAX_TOTAL_BYTES = 500_000_000
ZIP_MAX_RATIO = 200
ZIP_RATIO_MIN_BYTES = 1_000_000
ZIP_MAX_DEPTH = 3
#: A zip inside a zip is read into memory only up to this size.
ZIP_MAX_NESTED_BYTES = 100_000_000
#: A Gradescope ``submission_metadata.yml`` larger than this is not read.
MAX_METADATA_BYTES = 20_000_000
GRADESCOPE_METADATA = "submission_metadata.yml"

#: Names (compared case-insensitively) that a ``<student>`` never takes: the class files and
#: folders ``grade`` and the other commands write under ``--out``, and names Windows reserves.
#: Keys never contain a dot, so file names with an extension cannot collide anyway; the list
#: keeps the extension-less ones (and documents the others).
RESERVED_NAMES = frozenset({
    "index.html", "grades.csv", "intake.csv", "similarity.html", "similarity.csv", "clusters.json",
    "gradebook.sqlite", "gradebook.db", "gradebook", "similarity", "manual", "static", "assets",
    "con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10)),
})
_IGNORED_FOLDERS = {"__macosx", "__pycache__", ".ipynb_checkpoints"}

#: Unicode categories a safe name is made of (letters, combining marks, digits), plus "_" and "-".
_NAME_CATEGORIES = ("L", "M", "N")
_MAX_KEY = 80
_CANVAS = re.compile(r"^(?P<name>[^_]+)_(?P<late>late_)?(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$",
                     re.IGNORECASE)
_CANVAS_RESUBMISSION = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?(?P<file>.*)$",
                     re.IGNORECASE)


class Status(str, Enum):
    """What became of one entry found by intake (``intake.csv``'s ``status``)."""

    GRADED = "graded"            # part of the submission that is graded
    REUSED = "reused"            # unchanged since the last run: its stored grades are used (gradebook)
    SUPERSEDED = "superseded"    # the same student handed in something newer
    IGNORED = "ignored"          # not a submission (other file type, dot file, checkpoint...)
    REJECTED = "rejected"        # refused, with the reason (link, unsafe zip, too large...)


@dataclass
class IntakeEntry:
    """One row of ``intake.csv``: a file or folder found, and what became of it."""

    path: str                   # where it was found, from the SOURCE: "class.zip/alice/hw.py"
    status: Status
    detail: str = ""            # why, in plain words
    student: str = ""           # the ``<student>`` it belongs to, when it belongs to one


@dataclass(frozen=True)
class SourceFile:
    """One code file of a submission, read into memory."""

    name: str       # path inside the submission, '/'-separated: "hw.py", "pkg/util.py"
    data: bytes
    mtime: float    # modification time (a zip member's stored date)
    origin: str     # where it was found, as in ``IntakeEntry.path``

    @property
    def is_notebook(self) -> bool:
        return self.name.lower().endswith(".ipynb")

    @property
    def file_name(self) -> str:
        """The file's name as handed in (``doejane_1002_5002_hw-1.py``), for reports and rosters."""
        return self.origin.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class SubmissionSource:
    """Everything handed in by one student, ready to be read by ``submission.read_source``."""

    student: str                    # stable, unique, safe folder name (see the module docstring)
    display_name: str               # as the LMS or the file called the student
    files: list[SourceFile]
    layout: str = "file"            # "file", "folder", "zip", "canvas", "moodle", "gradescope"
    lms_id: Optional[str] = None    # the LMS's student id (Canvas user id, Moodle id, Gradescope SID)
    origin: str = ""                # the file or folder it came from, as in ``IntakeEntry.path``

    @property
    def main(self) -> SourceFile:
        """The file reports name: the notebook if there is one, else the first module."""
        notebooks = [f for f in self.files if f.is_notebook]
        return (notebooks or self.files)[0]

    @property
    def content_hash(self) -> str:
        """sha256 over every file's name and bytes: changes exactly when the submission does."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.name):
            h.update(f.name.encode("utf-8", "surrogatepass") + b"\0" + str(len(f.data)).encode() + b"\0")
            h.update(f.data)
        return h.hexdigest()


@dataclass
class Intake:
    sources: list[SubmissionSource] = field(default_factory=list)
    entries: list[IntakeEntry] = field(default_factory=list)

    def counts(self) -> dict[Status, int]:
        """Entries per status, every status present (0 when none)."""
        counts = {s: 0 for s in Status}
        for e in self.entries:
            counts[e.status] = counts.get(e.status, 0) + 1
        return counts


# ----------------------------------------------------------------------------- names

def display_name(raw: bytes) -> str:
    """A file name's bytes as text: UTF-8 when it is, else Windows-1252 / Latin-1 (``unzip`` of a
    Windows zip leaves such bytes). Never raises, never contains a surrogate."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _name_char(ch: str) -> bool:
    return ch in "_-" or (ch.isascii() and ch.isalnum()) or (
        not ch.isascii() and unicodedata.category(ch)[0] in _NAME_CATEGORIES)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    out = re.sub(r"_+", "_", "".join(ch if _name_char(ch) else "_" for ch in text)).strip("_-")
    return out[:_MAX_KEY] or "student"


def is_safe_key(name: str) -> bool:
    """A folder name that is the same on every system and never a class file's name."""
    return (0 < len(name) <= _MAX_KEY and all(_name_char(ch) for ch in name) and name[0] not in "_-"
            and unicodedata.category(name[0])[0] != "M"
            and unicodedata.normalize("NFC", name) == name and name.casefold() not in RESERVED_NAMES)


def student_key(name: str, raw: Optional[bytes] = None) -> str:
    """``name`` when safe, else its safe form plus ``~`` and a hash of the original bytes
    (a name whose bytes are not UTF-8, e.g. Latin-1, is never taken as it is: ``Müller.py`` in
    UTF-8 and in Latin-1 are two different files, so two different keys)."""
    if is_safe_key(name) and (raw is None or _is_utf8(raw)):
        return name
    digest = hashlib.sha256(raw if raw is not None else name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{_slug(display_name(raw) if raw is not None else name)}~{digest[:8]}"


def lms_key(name: str, lms_id: str) -> str:
    """``Name_ID`` for an LMS download: the id makes it unique, so the name only needs to be safe."""
    base = f"{_slug(name)}_{_slug(lms_id)}"
    return base if is_safe_key(base) else student_key(base)


# ----------------------------------------------------------------------------- the tree read

@dataclass
class _Node:
    """A file or folder found in a SOURCE folder or zip, with code already read into memory."""

    name: str                    # display name (decoded)
    raw: bytes                   # the name's original bytes
    path: str                    # display path from the SOURCE
    kind: str                    # "dir", "file", "rejected" or "ignored" (with ``detail``)
    mtime: float = 0.0
    data: Optional[bytes] = None          # code files and metadata, read
    children: list["_Node"] = field(default_factory=list)
    detail: str = ""                      # why rejected
    zip_of: Optional["_Node"] = None      # for a .zip file: its contents as a "dir" node (or rejected)

    @property
    def lower(self) -> str:
        return self.name.lower()

    @property
    def is_code(self) -> bool:
        return self.kind == "file" and self.lower.endswith(CODE_SUFFIXES)

    @property
    def is_zip(self) -> bool:
        return self.kind == "file" and self.lower.endswith(".zip")

    @property
    def stem(self) -> tuple[str, bytes]:
        cut = self.name.rfind(".")
        if cut <= 0:
            return self.name, self.raw
        raw_cut = self.raw.rfind(b".")
        return self.name[:cut], self.raw[:raw_cut] if raw_cut > 0 else self.raw


def _ignored_reason(name: str) -> Optional[str]:
    low = name.lower()
    if low in _IGNORED_FOLDERS:
        return {"__macosx": "macOS resource fork folder (__MACOSX)", "__pycache__": "Python cache folder",
                ".ipynb_checkpoints": "Jupyter checkpoints"}[low]
    if name.startswith("."):
        return "hidden (dot) file or folder"
    return None


def _wants_data(name: str) -> bool:
    low = name.lower()
    return low.endswith(CODE_SUFFIXES) or low == GRADESCOPE_METADATA


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _read_fd(fd: int, cap: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = os.read(fd, min(1 << 20, cap + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise _TooLarge()


class _TooLarge(Exception):
    pass


def _open_nofollow(name: str, dir_fd: Optional[int], directory: bool = False) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_DIRECTORY", 0) if directory else getattr(os, "O_NONBLOCK", 0)
    return os.open(name, flags, dir_fd=dir_fd)


def _read_dir(dir_fd: int, path: str, depth: int, skip: frozenset) -> list[_Node]:
    """The folder open at ``dir_fd``, walked without following any link; folders whose
    (device, inode) is in ``skip`` are not entered."""
    nodes = []
    try:
        entries = sorted(os.scandir(dir_fd), key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        return [_Node(name="", raw=b"", path=path + "/", kind="rejected",
                      detail=f"folder cannot be read: {exc.strerror or exc}")]
    for entry in entries:
        raw = os.fsencode(entry.name)
        name = display_name(raw)
        node_path = _join(path, name)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            nodes.append(_Node(name, raw, node_path, "rejected", detail=f"cannot be read: {exc.strerror or exc}"))
            continue
        if stat.S_ISLNK(st.st_mode):
            nodes.append(_Node(name, raw, node_path, "rejected",
                               detail="symbolic link (links are never followed)"))
        elif stat.S_ISDIR(st.st_mode):
            node = _Node(name, raw, node_path + "/", "dir", mtime=st.st_mtime)
            if (st.st_dev, st.st_ino) in skip:
                node = _Node(name, raw, node_path + "/", "ignored", detail="hwgrader's --out folder (not searched)")
            elif _ignored_reason(name) is None:
                if depth >= MAX_DEPTH:
                    node = _Node(name, raw, node_path + "/", "rejected",
                                 detail=f"nested more than {MAX_DEPTH} folders deep (not searched)")
                else:
                    try:
                        fd = _open_nofollow(entry.name, dir_fd, directory=True)
                    except OSError as exc:
                        node = _Node(name, raw, node_path + "/", "rejected",
                                     detail=f"folder cannot be read: {exc.strerror or exc}")
                    else:
                        try:
                            node.children = _read_dir(fd, node_path, depth + 1, skip)
                        finally:
                            os.close(fd)
            nodes.append(node)
        elif stat.S_ISREG(st.st_mode):
            nodes.append(_read_file_node(entry.name, dir_fd, name, raw, node_path, st, depth))
        else:
            nodes.append(_Node(name, raw, node_path, "rejected", detail="not a regular file (device, pipe or socket)"))
    return nodes


def _read_file_node(os_name: str, dir_fd: Optional[int], name: str, raw: bytes, path: str,
                    st: os.stat_result, depth: int) -> _Node:
    node = _Node(name, raw, path, "file", mtime=st.st_mtime)
    low = name.lower()
    if _ignored_reason(name) is not None or not (_wants_data(name) or low.endswith(".zip")):
        return node
    try:
        fd = _open_nofollow(os_name, dir_fd)
    except OSError as exc:
        return _Node(name, raw, path, "rejected", detail=f"cannot be read: {exc.strerror or exc}")
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # swapped between the listing and the open
            return _Node(name, raw, path, "rejected", detail="not a regular file")
        if low.endswith(".zip"):
            with os.fdopen(os.dup(fd), "rb") as fh:
                node.zip_of = _read_zip(fh, name, raw, path, depth=1)
        else:
            cap = MAX_METADATA_BYTES if low == GRADESCOPE_METADATA else MAX_CODE_BYTES
            try:
                node.data = _read_fd(fd, cap)
            except _TooLarge:
                return _Node(name, raw, path, "rejected",
                             detail=f"larger than {cap // 1_000_000} MB (not read)")
    except OSError as exc:
        return _Node(name, raw, path, "rejected", detail=f"cannot be read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    return node


def _zip_member_problem(info: zipfile.ZipInfo) -> Optional[str]:
    name = info.filename.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path in the zip (not read)"
    if ".." in parts:
        return "'..' in its path inside the zip (not read)"
    if "\0" in name:
        return "NUL byte in its name inside the zip (not read)"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link inside the zip (links are never followed)"
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        return "not a regular file inside the zip"
    if info.flag_bits & 0x1:
        return "encrypted zip member (not read)"
    return None


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    try:
        return time.mktime(info.date_time + (0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0


def _read_zip(fh, name: str, raw: bytes, path: str, depth: int) -> _Node:
    """A zip's contents as a folder node; a bad or oversized zip is one rejected node."""
    root = _Node(name, raw, path + "/", "dir")

    def rejected(detail: str) -> _Node:
        return _Node(name, raw, path, "rejected", detail=detail)

    try:
        archive = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        return rejected(f"not a readable zip file ({exc})")
    with archive:
        infos = archive.infolist()
        if len(infos) > ZIP_MAX_MEMBERS:
            return rejected(f"zip has {len(infos):,} members, more than the limit {ZIP_MAX_MEMBERS:,} (not read)")
        total = sum(i.file_size for i in infos)
        if total > ZIP_MAX_TOTAL_BYTES:
            return rejected(f"zip would unpack to {total / 1e6:,.0f} MB, more than the limit "
                            f"{ZIP_MAX_TOTAL_BYTES // 1_000_000} MB (not read)")
        for info in infos:
            if info.file_size > ZIP_RATIO_MIN_BYTES and info.file_size > ZIP_MAX_RATIO * max(1, info.compress_size):
                return rejected(f"zip member {info.filename!r} is compressed {info.file_size // max(1, info.compress_size):,} "
                                f"times (limit {ZIP_MAX_RATIO}): a zip bomb? (not read)")
        dirs: dict[tuple[str, ...], _Node] = {(): root}

        def folder(parts: tuple[str, ...]) -> _Node:
            if parts not in dirs:
                parent = folder(parts[:-1])
                node = _Node(parts[-1], parts[-1].encode("utf-8", "surrogateescape"),
                             _join(path, "/".join(parts)) + "/", "dir")
                parent.children.append(node)
                dirs[parts] = node
            return dirs[parts]

        for info in infos:
            member = info.filename.replace("\\", "/")
            parts = tuple(p for p in member.split("/") if p not in ("", "."))
            problem = _zip_member_problem(info)
            member_path = _join(path, member.rstrip("/"))
            if problem:
                root.children.append(_Node(parts[-1] if parts else member, member.encode("utf-8", "surrogateescape"),
                                           member_path, "rejected", detail=problem))
                continue
            if not parts:
                continue
            if any(_ignored_reason(p) for p in parts[:-1]):
                # inside an ignored folder: listed once, as that folder
                cut = next(i for i, p in enumerate(parts) if _ignored_reason(p))
                folder(parts[:cut + 1])
                continue
            if info.is_dir():
                folder(parts)
                continue
            parent = folder(parts[:-1])
            leaf = parts[-1]
            node = _Node(leaf, leaf.encode("utf-8", "surrogateescape"), member_path, "file", mtime=_zip_mtime(info))
            low = leaf.lower()
            if _ignored_reason(leaf) is None and (_wants_data(leaf) or low.endswith(".zip")):
                if low.endswith(".zip"):
                    if depth >= ZIP_MAX_DEPTH:
                        node = _Node(leaf, node.raw, member_path, "rejected",
                                     detail=f"zip nested more than {ZIP_MAX_DEPTH} deep (not read)")
                    elif info.file_size > ZIP_MAX_NESTED_BYTES:
                        node = _Node(leaf, node.raw, member_path, "rejected",
                                     detail=f"zip inside a zip larger than {ZIP_MAX_NESTED_BYTES // 1_000_000} MB (not read)")
                    else:
                        try:
                            inner = archive.read(info)
                        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                            node = _Node(leaf, node.raw, member_path, "rejected", detail=f"corrupt zip member ({exc})")
                        else:
                            node.zip_of = _read_zip(io.BytesIO(inner), leaf, node.raw, member_path, depth + 1)
                else:
                    cap = MAX_METADATA_BYTES if low == GRADESCOPE_METADATA else MAX_CODE_BYTES
                    if info.file_size > cap:
                        node = _Node(leaf, node.raw, member_path, "rejected",
                                     detail=f"larger than {cap // 1_000_000} MB (not read)")
                    else:
                        try:
                            with archive.open(info) as member_fh:
                                node.data = member_fh.read(cap + 1)
                        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                                RuntimeError) as exc:
                            node = _Node(leaf, node.raw, member_path, "rejected", detail=f"corrupt zip member ({exc})")
                        else:
                            if len(node.data) > cap:
                                node = _Node(leaf, node.raw, member_path, "rejected",
                                             detail=f"larger than {cap // 1_000_000} MB (not read)")
            parent.children.append(node)
    return root


# ----------------------------------------------------------------------------- what files define

def _defined_names(node: _Node) -> set[str]:
    """Top-level functions a code file defines, by parsing (nothing runs)."""
    if node.data is None:
        return set()
    try:
        text = node.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return set()
    sources = [text]
    if node.lower.endswith(".ipynb"):
        try:
            cells = json.loads(text).get("cells", [])
            sources = ["".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                       for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
        except (ValueError, AttributeError, TypeError, KeyError):
            return set()
    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            names.update(re.findall(r"^def\s+(\w+)", src, flags=re.MULTILINE))
            continue
        names.update(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def _imported_modules(node: _Node) -> set[str]:
    if node.data is None or not node.lower.endswith(".py"):
        return set()
    try:
        tree = ast.parse(node.data.decode("utf-8-sig"))
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return set()
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out.add(n.module.split(".")[0])
    return out


# ----------------------------------------------------------------------------- classification

@dataclass
class _Candidate:
    """One submission of one student, before duplicates are resolved."""

    student: str
    display_name: str
    layout: str
    lms_id: Optional[str]
    origin: str
    files: list[tuple[str, _Node]]                 # (name inside the submission, node)
    rank: tuple = ()                               # the LMS's own order (higher is newer)
    entries: list[IntakeEntry] = field(default_factory=list)   # superseded/ignored inside it

    @property
    def newest(self) -> float:
        return max((n.mtime for _, n in self.files), default=0.0)

    def order(self) -> tuple:
        return (self.rank, self.newest, any(n.lower.endswith(".ipynb") for _, n in self.files))


class _Discovery:
    def __init__(self, homework: frozenset[str]):
        self.homework = homework
        self.entries: list[IntakeEntry] = []
        self.candidates: list[_Candidate] = []

    # -- helpers -----------------------------------------------------------
    def _entry(self, node: _Node, status: Status, detail: str, student: str = "") -> None:
        self.entries.append(IntakeEntry(node.path, status, detail, student))

    def _homework_defs(self, node: _Node) -> set[str]:
        return _defined_names(node) & self.homework

    def _contents(self, node: _Node) -> list[_Node]:
        """A folder's children, or a zip's (its members)."""
        if node.kind == "dir":
            return node.children
        if node.zip_of is not None and node.zip_of.kind == "dir":
            return node.zip_of.children
        return []

    def _has_code(self, node: _Node) -> bool:
        return any(c.is_code or ((c.kind == "dir" and _ignored_reason(c.name) is None) or c.zip_of is not None)
                   and self._has_code(c) for c in self._contents(node))

    def _lms_marker(self, children: list[_Node]) -> bool:
        for c in children:
            if c.kind == "file" and c.lower == GRADESCOPE_METADATA:
                return True
            if c.kind in ("dir", "file") and (_MOODLE.match(c.name) or (c.kind == "file" and _CANVAS.match(c.name)
                                                                        and (c.is_code or c.is_zip))):
                return True
        return False

    def _duplicated_homework(self, code: list[_Node]) -> bool:
        seen: set[str] = set()
        for c in code:
            defs = self._homework_defs(c)
            if defs & seen:
                return True
            seen |= defs
        return False

    def _is_grouping(self, node: _Node) -> bool:
        children = self._contents(node)
        if self._lms_marker(children):
            return True
        code = [c for c in children if c.is_code]
        if self._duplicated_homework(code):
            return True
        subs = [c for c in children if (c.kind == "dir" and _ignored_reason(c.name) is None or c.zip_of is not None)
                and self._has_code(c)]
        return not code and len(subs) >= 2

    # -- walking -----------------------------------------------------------
    def root(self, node: _Node) -> None:
        """A SOURCE folder or zip: a container, unless it is visibly one student's modules."""
        children = self._contents(node)
        code = [c for c in children if c.is_code]
        stems = {c.stem[0] for c in code if c.lower.endswith(".py")}
        if (len(code) >= 2 and not self._lms_marker(children) and not self._duplicated_homework(code)
                and any(_imported_modules(c) & (stems - {c.stem[0]}) for c in code)):
            self.student_folder(node)
        else:
            self.container(node)

    def container(self, node: _Node) -> None:
        children = self._contents(node)
        metadata = self._gradescope_metadata(children)
        canvas: dict[tuple[str, str], list[tuple[_Node, re.Match]]] = {}
        for child in children:
            reason = _ignored_reason(child.name) if child.name else None
            if child.kind == "ignored":
                self._entry(child, Status.IGNORED, child.detail)
            elif child.kind == "rejected":
                stem, raw = child.stem
                named = child.lower.endswith(CODE_SUFFIXES)
                self._entry(child, Status.REJECTED, child.detail, student_key(stem, raw) if named else "")
            elif reason:
                self._entry(child, Status.IGNORED, reason + (" (not searched)" if child.kind == "dir" else ""))
            elif child.kind == "dir":
                self._folder_child(child, metadata)
            elif child.lower == GRADESCOPE_METADATA and metadata is not None:
                self._entry(child, Status.IGNORED, "Gradescope export metadata (read for the students' names and ids)")
            elif (child.is_code or child.is_zip) and _CANVAS.match(child.name):
                m = _CANVAS.match(child.name)
                canvas.setdefault((m["name"].lower(), m["uid"]), []).append((child, m))
            elif (child.is_code or child.is_zip) and _MOODLE.match(child.name):
                self._moodle(child, _MOODLE.match(child.name), flat=True)
            elif child.is_zip:
                self._zip_child(child)
            elif child.is_code:
                stem, raw = child.stem
                self._add(_Candidate(student_key(stem, raw), stem, "file", None, child.path, [(child.name, child)]))
            else:
                self._entry(child, Status.IGNORED, "not a .py or .ipynb file")
        for (_, uid), found in canvas.items():
            self._canvas(found)

    def _folder_child(self, child: _Node, metadata: Optional[dict]) -> None:
        if metadata is not None and child.name in metadata:
            self._gradescope(child, metadata[child.name])
        elif _MOODLE.match(child.name):
            self._moodle(child, _MOODLE.match(child.name), flat=False)
        elif self._is_grouping(child):
            self.container(child)
        elif self._has_code(child):
            self.student_folder(child)
        else:
            self._ignore_tree(child, "no .py or .ipynb file in this folder")

    def _zip_child(self, child: _Node) -> None:
        inner = child.zip_of
        if inner is None or inner.kind == "rejected":
            self._entry(child, Status.REJECTED, inner.detail if inner is not None else "zip not read")
        elif self._is_grouping(child):
            self.container(inner)
        elif self._has_code(child):
            self.student_folder(child, layout="zip")
        else:
            self._ignore_tree(inner, "no .py or .ipynb file in this zip")
            self._entry(child, Status.IGNORED, "zip without a .py or .ipynb file")

    def _ignore_tree(self, node: _Node, detail: str, student: str = "") -> None:
        for c in self._contents(node):
            if c.kind in ("rejected", "ignored"):
                self._entry(c, Status(c.kind), c.detail, student)
            elif c.kind == "dir" and _ignored_reason(c.name) is None:
                self._ignore_tree(c, detail, student)
            else:
                self._entry(c, Status.IGNORED, _ignored_reason(c.name) or detail, student)

    def _collect(self, node: _Node, prefix: str, student: str,
                 out: list[tuple[str, _Node]], notes: list[IntakeEntry]) -> None:
        """Every code file below ``node`` (zips included), named relative to the submission."""
        for c in self._contents(node):
            name = f"{prefix}{c.name}"
            reason = _ignored_reason(c.name)
            if c.kind == "rejected":
                notes.append(IntakeEntry(c.path, Status.REJECTED, c.detail, student))
            elif c.kind == "ignored":
                notes.append(IntakeEntry(c.path, Status.IGNORED, c.detail, student))
            elif reason:
                notes.append(IntakeEntry(c.path, Status.IGNORED, reason + (" (not searched)" if c.kind == "dir" else ""), student))
            elif c.kind == "dir":
                self._collect(c, name + "/", student, out, notes)
            elif c.is_zip:
                if c.zip_of is None or c.zip_of.kind == "rejected":
                    notes.append(IntakeEntry(c.path, Status.REJECTED, c.zip_of.detail if c.zip_of else "zip not read", student))
                else:
                    self._collect(c.zip_of, prefix, student, out, notes)
            elif c.is_code:
                out.append((name, c))
            elif c.lower == GRADESCOPE_METADATA:
                notes.append(IntakeEntry(c.path, Status.IGNORED, "Gradescope export metadata", student))
            else:
                notes.append(IntakeEntry(c.path, Status.IGNORED, "not a .py or .ipynb file", student))

    def student_folder(self, node: _Node, layout: str = "folder", *, student: Optional[str] = None,
                       display: Optional[str] = None, lms_id: Optional[str] = None, rank: tuple = ()) -> None:
        name, raw = node.stem if layout == "zip" or node.lower.endswith(".zip") else (node.name, node.raw)
        key = student or student_key(name, raw)
        files: list[tuple[str, _Node]] = []
        notes: list[IntakeEntry] = []
        self._collect(node, "", key, files, notes)
        cand = _Candidate(key, display or name, layout, lms_id, node.path, files, rank, notes)
        if files:
            self._add(cand)
        else:
            self.entries.extend(notes)
            self._entry(node, Status.IGNORED, "no .py or .ipynb file in this submission")

    # -- LMS layouts -------------------------------------------------------
    def _gradescope_metadata(self, children: list[_Node]) -> Optional[dict]:
        meta = next((c for c in children if c.kind == "file" and c.lower == GRADESCOPE_METADATA), None)
        if meta is None or meta.data is None:
            return None
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(meta.data.decode("utf-8", "replace"), Loader=loader)  # noqa: S506 -- a safe loader
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            self._entry(meta, Status.REJECTED, f"unreadable Gradescope metadata: {str(exc).splitlines()[0][:200]}")
            return None
        return data if isinstance(data, dict) else None

    def _gradescope(self, node: _Node, record) -> None:
        submitters = record.get(":submitters") if isinstance(record, dict) else None
        people = [s for s in submitters if isinstance(s, dict)] if isinstance(submitters, list) else []
        names = [str(p.get(":name") or "").strip() for p in people]
        sid = next((str(p.get(k)).strip() for p in people for k in (":sid", ":email")
                    if p.get(k) not in (None, "")), None)
        sub_id = node.name.split("_", 1)[-1]
        lms_id = sid or sub_id
        display = " & ".join(n for n in names if n) or node.name
        created = record.get(":created_at") if isinstance(record, dict) else None
        when = created.timestamp() if isinstance(created, _dt.datetime) else 0.0
        self.student_folder(node, "gradescope", student=lms_key(display.split(" & ")[0], lms_id.split("@")[0]),
                            display=display, lms_id=lms_id, rank=(0, 0, when))

    def _moodle(self, node: _Node, m: re.Match, *, flat: bool) -> None:
        key = lms_key(m["name"], m["id"])
        if m["plugin"].lower() != "file" and not (node.is_code or self._has_code(node)):
            detail = f"Moodle {m['plugin']} submission (not code)"
            if node.kind == "dir":
                self._ignore_tree(node, detail, key)
            self._entry(node, Status.IGNORED, detail, key)
            return
        if flat and node.is_code:
            self._add(_Candidate(key, m["name"], "moodle", m["id"], node.path, [(m["file"] or node.name, node)]))
        elif flat and node.is_zip:
            self._zip_as(node, key, m["name"], "moodle", m["id"], ())
        else:
            self.student_folder(node, "moodle", student=key, display=m["name"], lms_id=m["id"])

    def _zip_as(self, node: _Node, key: str, display: str, layout: str, lms_id: str, rank: tuple) -> None:
        if node.zip_of is None or node.zip_of.kind == "rejected":
            self._entry(node, Status.REJECTED, node.zip_of.detail if node.zip_of else "zip not read", key)
        else:
            self.student_folder(node.zip_of, layout, student=key, display=display, lms_id=lms_id, rank=rank)

    def _canvas(self, found: list[tuple[_Node, re.Match]]) -> None:
        """All of one Canvas student's files: one submission per submission id (normally one)."""
        by_submission: dict[str, list[tuple[_Node, re.Match]]] = {}
        for node, m in found:
            by_submission.setdefault(m["sid"], []).append((node, m))
        for sid, group in by_submission.items():
            m0 = group[0][1]
            key = lms_key(m0["name"], m0["uid"])
            late = any(m["late"] for _, m in group)
            files: list[tuple[str, _Node]] = []
            notes: list[IntakeEntry] = []
            attempt = 0
            versions: dict[str, list[tuple[int, str, _Node]]] = {}
            for node, m in group:
                if node.is_zip:
                    if node.zip_of is None or node.zip_of.kind == "rejected":
                        notes.append(IntakeEntry(node.path, Status.REJECTED,
                                                 node.zip_of.detail if node.zip_of else "zip not read", key))
                    else:
                        self._collect(node.zip_of, "", key, files, notes)
                    continue
                stem, dot, ext = m["file"].rpartition(".")
                again = _CANVAS_RESUBMISSION.match(stem)
                n = int(again["n"]) if again else 0
                base = f"{again['base'] if again else stem}.{ext}".lower()
                versions.setdefault(base, []).append((n, m["file"], node))
            for base, vs in versions.items():
                vs.sort(key=lambda v: (v[0], v[2].mtime))
                n, name, node = vs[-1]
                attempt = max(attempt, n)
                files.append((_canvas_original(name), node))
                for _, _, old in vs[:-1]:
                    notes.append(IntakeEntry(old.path, Status.SUPERSEDED,
                                             f"Canvas resubmission: superseded by {node.name}", key))
            if files:
                self._add(_Candidate(key, m0["name"], "canvas", m0["uid"], group[0][0].path, files,
                                     rank=(int(late), attempt, 0.0), entries=notes))
            else:
                self.entries.extend(notes)

    # -- one student, one submission ----------------------------------------
    def _add(self, cand: _Candidate) -> None:
        self.candidates.append(cand)

    def resolve(self) -> list[SubmissionSource]:
        by_student: dict[str, list[_Candidate]] = {}
        for c in self.candidates:
            by_student.setdefault(c.student, []).append(c)
        sources = []
        for key in sorted(by_student):
            cands = by_student[key]
            plain_py = {_without_suffix(c.files[0][1].path) for c in cands
                        if c.layout == "file" and c.files[0][1].lower.endswith(".py")}

            def notebook_of_a_pair(c: _Candidate) -> bool:  # x.ipynb beside x.py
                return (c.layout == "file" and c.files[0][1].lower.endswith(".ipynb")
                        and _without_suffix(c.files[0][1].path) in plain_py)

            cands.sort(key=lambda c: (notebook_of_a_pair(c), c.order()), reverse=True)
            chosen = cands[0]
            for old in cands[1:]:
                pair = notebook_of_a_pair(chosen) and old.layout == "file" and \
                    _without_suffix(old.files[0][1].path) == _without_suffix(chosen.files[0][1].path)
                why = "a notebook of the same name is graded" if pair else "a newer submission is graded"
                for _, n in old.files:
                    self.entries.append(IntakeEntry(n.path, Status.SUPERSEDED, f"{why}: {chosen.origin}", key))
                self.entries.extend(old.entries)
            source = self._source(chosen)
            if source is not None:
                sources.append(source)
        return sources

    def _source(self, cand: _Candidate) -> Optional[SubmissionSource]:
        key = cand.student
        self.entries.extend(cand.entries)
        files = sorted(cand.files, key=lambda f: f[0].lower())
        # inside one submission: several notebooks -> the newest; x.py beside x.ipynb -> the notebook
        notebooks = sorted((f for f in files if f[1].lower.endswith(".ipynb")),
                           key=lambda f: (f[1].mtime, f[0]), reverse=True)
        keep = []
        for name, node in files:
            if node.lower.endswith(".ipynb") and notebooks and node is not notebooks[0][1]:
                self.entries.append(IntakeEntry(node.path, Status.SUPERSEDED,
                                                f"a newer notebook of this submission is graded: {notebooks[0][1].path}", key))
            elif (node.lower.endswith(".py") and notebooks
                  and name.rsplit(".", 1)[0].lower() == notebooks[0][0].rsplit(".", 1)[0].lower()):
                self.entries.append(IntakeEntry(node.path, Status.SUPERSEDED,
                                                f"a notebook of the same name is graded: {notebooks[0][1].path}", key))
            else:
                keep.append((name, node))
        total = sum(len(n.data or b"") for _, n in keep)
        if len(keep) > MAX_SUBMISSION_FILES or total > MAX_SUBMISSION_BYTES:
            for _, node in keep:
                self.entries.append(IntakeEntry(node.path, Status.REJECTED,
                                                f"the submission has {len(keep)} code files, {total / 1e6:.1f} MB: more "
                                                f"than {MAX_SUBMISSION_FILES} files or "
                                                f"{MAX_SUBMISSION_BYTES // 1_000_000} MB", key))
            return None
        detail = {"file": "", "folder": "folder per student", "zip": "zip per student", "canvas": "Canvas download",
                  "moodle": "Moodle download", "gradescope": "Gradescope export"}[cand.layout]
        modules = len(keep) > 1
        for name, node in keep:
            parts = [p for p in (detail, f"one of {len(keep)} files of this submission" if modules else "") if p]
            self.entries.append(IntakeEntry(node.path, Status.GRADED, "; ".join(parts), key))
        return SubmissionSource(
            student=key, display_name=cand.display_name,
            files=[SourceFile(name, node.data or b"", node.mtime, node.path) for name, node in keep],
            layout=cand.layout, lms_id=cand.lms_id, origin=cand.origin)


def _without_suffix(path: str) -> str:
    return path.rsplit(".", 1)[0].lower()


def _canvas_original(name: str) -> str:
    """``hw-2.py`` -> ``hw.py``: the file name the student uploaded, before Canvas numbered it."""
    stem, dot, ext = name.rpartition(".")
    again = _CANVAS_RESUBMISSION.match(stem)
    return f"{again['base']}.{ext}" if again and dot else name


# ----------------------------------------------------------------------------- entry point

def _source_node(arg: Path, skip: frozenset = frozenset()) -> _Node:
    """A SOURCE as a node; a missing or unusable one is a usage error (nothing has been read)."""
    raw = os.fsencode(arg)
    shown = display_name(raw)
    try:
        st = os.stat(arg)  # the SOURCE itself may be a link: the user named it
    except FileNotFoundError:
        raise UsageError(f"submissions not found: {shown} (give a folder, a .py or .ipynb file, or a .zip)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    name_raw = os.fsencode(arg.name) or raw
    name = display_name(name_raw)
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(arg, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise UsageError(f"cannot read the folder {shown}: {exc.strerror or exc}") from None
        try:
            node = _Node(name, name_raw, shown.rstrip("/") + "/", "dir", mtime=st.st_mtime)
            node.children = _read_dir(fd, shown.rstrip("/"), 1, skip)
        finally:
            os.close(fd)
        return node
    low = name.lower()
    if not stat.S_ISREG(st.st_mode) or not (low.endswith(CODE_SUFFIXES) or low.endswith(".zip")):
        raise UsageError(f"{shown} is not a folder, a .py or .ipynb file, or a .zip")
    try:
        fd = os.open(arg, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        node = _Node(name, name_raw, shown, "file", mtime=st.st_mtime)
        if low.endswith(".zip"):
            with os.fdopen(os.dup(fd), "rb") as fh:
                node.zip_of = _read_zip(fh, name, name_raw, shown, depth=1)
        else:
            try:
                node.data = _read_fd(fd, MAX_CODE_BYTES)
            except _TooLarge:
                node = _Node(name, name_raw, shown, "rejected",
                             detail=f"larger than {MAX_CODE_BYTES // 1_000_000} MB (not read)")
    finally:
        os.close(fd)
    return node


def discover(sources: Sequence[Path], *, homework: Iterable[str] = (), skip: Iterable[Path] = ()) -> Intake:
    """Every submission in ``sources`` (see the module docstring). ``homework``, the function
    names students must define, tells a class folder from one student's modules; folders in
    ``skip`` (``--out``, when it lies inside a SOURCE) are not searched.
    A SOURCE that does not exist or is neither a folder, a code file nor a zip is a
    ``UsageError``; anything wrong inside a SOURCE is an entry, never an exception."""
    d = _Discovery(frozenset(homework))
    skipped = set()
    for folder in skip:
        try:
            st = os.stat(folder)
        except OSError:
            continue
        skipped.add((st.st_dev, st.st_ino))
    for arg in sources:
        node = _source_node(Path(arg), frozenset(skipped))
        if node.kind == "rejected":
            d._entry(node, Status.REJECTED, node.detail)
        elif node.kind == "dir":
            d.root(node)
        elif node.is_zip:
            inner = node.zip_of
            if inner is None or inner.kind == "rejected":
                d._entry(node, Status.REJECTED, inner.detail if inner is not None else "zip not read")
            else:
                d.root(inner)
        else:
            d.container(_Node("", b"", "", "dir", children=[node]))
    found = d.resolve()
    entries = sorted(d.entries, key=lambda e: (e.path.encode("utf-8", "surrogatepass"), e.status.value))
    return Intake(sources=found, entries=entries)


# ----------------------------------------------------------------------------- to the worker

def module_name(name: str) -> tuple[str, bool]:
    """``pkg/util.py`` -> (``pkg.util``, False); ``pkg/__init__.py`` -> (``pkg``, True)."""
    parts = name[:-3].split("/") if name.lower().endswith(".py") else name.split("/")
    if len(parts) > 1 and parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def read_source(source: SubmissionSource):
    """The submission's code units for the worker (parsed, never run; see ``submission``).

    One file: as ``submission.read_submission`` reads it. Several: every ``.py`` is a module the
    others can import by its name (``utils.py`` -> ``import utils``; sub-folders are packages),
    and the notebook, if there is one, is the main namespace. A file that cannot be read is
    that student's load error."""
    from grader.assignment.submission import MAX_SOURCE_BYTES, Submission, _decode, _read_notebook

    main = source.main
    sub = Submission(student=source.student, path=Path(main.name))
    several = len(source.files) > 1
    try:
        for f in source.files:
            if len(f.data) > MAX_SOURCE_BYTES:
                raise ValueError(f"{f.name}: the file is {len(f.data) // 1_000_000} MB; submissions are "
                                 f"limited to {MAX_SOURCE_BYTES // 1_000_000} MB")
        if main.is_notebook:
            try:
                _read_notebook(sub, main.data)
            except ValueError as exc:
                raise ValueError(f"{main.name}: {exc}") from None
        for f in source.files:
            if f.is_notebook:
                continue
            try:
                text = _decode(f.data)
            except ValueError as exc:
                raise ValueError(f"{f.name}: {exc}") from None
            unit = {"cell": 0, "filename": f.name, "source": text}
            if several:
                unit["module"], unit["package"] = module_name(f.name)
            sub.units.append(unit)
    except ValueError as exc:
        sub.units = []
        sub.load_error = str(exc)
    return sub
