"""Turning a handed-in file into code units for the worker, in the trusted parent.

Reading a submission only parses it (text or notebook JSON): nothing in it
runs here. A ``.py`` module is one unit; a notebook gives one unit per code
cell, with IPython magics and shell escapes neutralised (they are not run,
per the handout) while keeping line numbers, so tracebacks still point at
the student's line. A file that cannot be read becomes a ``load_error`` for
that student, never an exception for the batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SUFFIXES = (".py", ".ipynb")
MAX_SOURCE_BYTES = 5_000_000
_MAGIC = re.compile(r"^(\s*)(%|!)")
_CELL_MAGIC = re.compile(r"^\s*%%(\w+)")
#: Cell magics whose body is ordinary Python (it still runs, only the magic line does not).
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
_ANSWER_HEADING = re.compile(r"^\s*\*\*\s*Answer\s+(Q\d+)\s*\*\*\s*$", re.IGNORECASE)


@dataclass
class Submission:
    student: str                     # file name without its extension
    path: Path
    units: list[dict] = field(default_factory=list)   # {"cell", "filename", "source"} for the worker
    markdown_answers: dict[str, str] = field(default_factory=dict)  # {"ANSWER_Q1": text}
    load_error: Optional[str] = None


def read_submission(path: Path) -> Submission:
    path = Path(path)
    sub = Submission(student=path.stem, path=path)
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise ValueError(f"the file is {size // 1_000_000} MB; submissions are limited to "
                             f"{MAX_SOURCE_BYTES // 1_000_000} MB")
        raw = path.read_bytes()
        if path.suffix == ".ipynb":
            _read_notebook(sub, raw)
        else:
            sub.units = [{"cell": 0, "filename": path.name, "source": _decode(raw)}]
    except (OSError, ValueError) as exc:
        sub.load_error = f"{path.name}: {exc}"
    return sub


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from None


def _read_notebook(sub: Submission, raw: bytes) -> None:
    import nbformat  # only notebooks need it

    try:
        nb = nbformat.reads(_decode(raw), as_version=4)
    except Exception as exc:  # nbformat raises many kinds for a bad file
        raise ValueError(f"not a readable Jupyter notebook: {str(exc).splitlines()[0][:200]}") from None
    for number, cell in enumerate(nb.cells, start=1):
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if cell.get("cell_type") == "code":
            sub.units.append({"cell": number, "filename": f"{sub.path.name} [cell {number}]",
                              "source": neutralise_magics(source)})
        elif cell.get("cell_type") == "markdown":
            first, _, rest = source.lstrip("\n").partition("\n")
            heading = _ANSWER_HEADING.match(first)
            if heading:
                sub.markdown_answers[f"ANSWER_{heading.group(1).upper()}"] = rest.strip()


def neutralise_magics(source: str) -> str:
    """Replace IPython magics and shell escapes by ``pass``, keeping indentation and line count."""
    lines = source.split("\n")
    cell_magic = _CELL_MAGIC.match(lines[0]) if lines else None
    if cell_magic and cell_magic.group(1) not in _PYTHON_CELL_MAGICS:  # %%bash, %%writefile: not Python
        return "\n".join("" for _ in lines)
    if cell_magic:
        lines[0] = ""
    out = []
    for line in lines:
        magic = _MAGIC.match(line)
        out.append(f"{magic.group(1)}pass  # magic not run" if magic else line)
    return "\n".join(out)
