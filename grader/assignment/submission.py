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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from grader.sandbox.replies import loads_bounded

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


#: Deepest JSON nesting accepted in a notebook (cell outputs may hold nested JSON; a file nested
#: deeper is refused before the JSON parser recurses).
NOTEBOOK_MAX_DEPTH = 100


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _text(value, where: str) -> str:
    """A notebook ``source``/``input``: text, or a list of text lines (joined)."""
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        value = "".join(value)
    elif isinstance(value, list):
        bad = next(line for line in value if not isinstance(line, str))
        raise ValueError(f"{where} is a list holding {_kind(bad)}, not lines of text")
    elif not isinstance(value, str):
        raise ValueError(f"{where} is {_kind(value)}, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a JSON escape like "\\ud800": not a character
        raise ValueError(f"{where} holds an invalid character (a lone surrogate at {exc.start})") from None
    return value


def _cells_of(nb, version: int) -> list:
    """The notebook's cells after checking every level the grader reads is what nbformat says."""
    if version == 4:
        cells = nb.get("cells")
        if not isinstance(cells, list):
            raise ValueError(f"'cells' is {_kind(cells)}, not a list")
    else:  # nbformat 3: cells live in worksheets
        sheets = nb.get("worksheets", [])
        if not isinstance(sheets, list) or not all(isinstance(w, dict) for w in sheets):
            raise ValueError("'worksheets' is not a list of objects")
        cells = []
        for w in sheets:
            if not isinstance(w.get("cells", []), list):
                raise ValueError(f"a worksheet's 'cells' is {_kind(w.get('cells'))}, not a list")
            cells.extend(w.get("cells", []))
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise ValueError(f"cell {number} is {_kind(cell)}, not an object")
        if not isinstance(cell.get("cell_type"), str):
            raise ValueError(f"cell {number} has no 'cell_type'")
        key = "input" if version == 3 and cell["cell_type"] == "code" else "source"
        _text(cell.get(key, ""), f"cell {number}'s '{key}'")
    return cells


def _read_notebook(sub: Submission, raw: bytes) -> None:
    """Code cells -> units, ``**Answer Qn**`` markdown cells -> answers.

    Only what the grader reads is checked (the JSON, ``nbformat``, ``cells``, each cell's
    ``cell_type`` and ``source``): a notebook wrong there is the student's load error naming
    the cell; other schema violations (a missing ``outputs``, odd metadata) are tolerated, as
    Jupyter opens such files too. Notebooks older than version 4 are upgraded by nbformat.
    """
    try:
        nb = loads_bounded(_decode(raw), max_depth=NOTEBOOK_MAX_DEPTH)
    except ValueError as exc:
        raise ValueError(f"not a readable Jupyter notebook: {str(exc).splitlines()[0][:200]}") from None
    if not isinstance(nb, dict):
        raise ValueError(f"not a Jupyter notebook: the file holds {_kind(nb)}, not a notebook object")
    version = nb.get("nbformat")
    if type(version) is not int or version not in (3, 4):
        raise ValueError(f"not a Jupyter notebook of a version hwgrader reads (nbformat {version!r}; 3 or 4)")
    _cells_of(nb, version)
    if version == 3:
        import nbformat  # only old notebooks need it

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nb = nbformat.convert(nbformat.from_dict(nb), 4)
        except (ValueError, nbformat.ValidationError) as exc:
            raise ValueError(f"not a readable Jupyter notebook: {str(exc).splitlines()[0][:200]}") from None
    for number, cell in enumerate(_cells_of(nb, 4), start=1):
        source = _text(cell.get("source", ""), f"cell {number}'s 'source'")
        if cell["cell_type"] == "code":
            sub.units.append({"cell": number, "filename": f"{sub.path.name} [cell {number}]",
                              "source": neutralise_magics(source)})
        elif cell["cell_type"] == "markdown":
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
