"""The one schema of the worker's replies, and the parent's bounded reader for them.

Everything a worker sends is data chosen by the student: the worker runs student code in its
own process, and that code can write any bytes on the reply channel (``forge_*`` attacks). So
the parent reads a reply in three steps, each bounded, and nothing of a reply is used before
all three passed:

1. **Frame** (:class:`ReplyReader`): ``!I`` header length, at most ``max_header`` bytes of
   header, then the payload read straight into one preallocated buffer of exactly the
   announced size, refused before a byte of it is read when it is over the call's
   ``max_payload``. The parent's memory for one reply is thus ``max_header + max_payload``.
2. **JSON** (:func:`loads_bounded`): nesting depth measured on the raw bytes *before*
   ``json.loads`` recurses (a header nested 200 000 deep is refused in a few ms, it never
   reaches the recursion limit); no NaN/Infinity; UTF-8 only.
3. **Schema** (:data:`SCHEMA`, :func:`parse_reply`): the reply's kind, every field's type,
   string lengths, list lengths, shapes (``[0, 2**70]`` is refused: no dimension above
   ``protocol.MAX_ELEMENTS``), the element count and that the payload size matches the shapes.
   Unknown keys (a forged ``"score"``) are ignored.

Any failure raises :class:`InvalidReply` (a ``ProtocolError``): for the session that is the
call's ``invalid_reply`` outcome, never an exception for the batch.

This module is the parent's (trusted) side; the worker writes replies with
``sandbox/inside/protocol.py`` and never imports it.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Optional, Union

import numpy as np

from grader.sandbox.inside import protocol
from grader.sandbox.inside.protocol import ProtocolError

__all__ = [
    "Outcome", "InvalidReply", "ReplyTooLarge", "ReplyReader", "loads_bounded", "json_depth",
    "parse_reply", "Ready", "Loaded", "LoadedCell", "Returned", "Raised", "SCHEMA",
    "MAX_DEPTH", "LOAD_HEADER_BYTES", "CALL_HEADER_BYTES",
]


class Outcome(StrEnum):
    """How one call (or the load) in a worker ended, as the parent saw it.

    The grading layer maps every value but ``ok`` to the verdict of the same name.
    """

    OK = "ok"                        # a valid reply with outputs (or the load's report)
    EXCEPTION = "exception"          # the student's function raised
    REJECTED = "rejected"            # a return value that is not a float array (or too large to read)
    MISSING = "missing"              # the function is not defined
    MEMORY = "memory"                # out of memory
    TIMEOUT = "timeout"              # wall clock or CPU limit
    CRASH = "crash"                  # the worker died or closed its channel
    INVALID_REPLY = "invalid_reply"  # the reply broke this module's schema
    SKIPPED = "skipped"              # not run (time budget spent, the worker cannot be restarted)


#: Outcomes a worker may report itself in a failure reply (``{"ok": false, "kind": ...}``).
WORKER_KINDS = (Outcome.EXCEPTION, Outcome.REJECTED, Outcome.MISSING, Outcome.MEMORY)

#: Deepest JSON nesting of any valid reply is 4 (``{"outputs": [{"shape": [..]}]}``).
MAX_DEPTH = 8
#: Header caps: a load reply carries tracebacks and written answers (the worker trims it to stay
#: under the protocol's 1 MiB); a call reply carries one message and one traceback (<= 20 000
#: characters, escaped as JSON: well under 256 KiB).
LOAD_HEADER_BYTES = protocol.MAX_HEADER
CALL_HEADER_BYTES = 256 << 10
#: String and list caps of the schema: generous multiples of what the worker itself sends.
_MSG = 2_000
_TB = 100_000
_ANSWER = 100_000
_NAME = 10_000
_FUNCTIONS = 5_000
_CELLS = 10_000
_MAX_DIM = protocol.MAX_ELEMENTS
_MAX_NDIM = 32
_MAX_OUTPUTS = 64


class InvalidReply(ProtocolError):
    """A reply the parent cannot use: malformed frame, JSON, or a field outside the schema."""


class ReplyTooLarge(InvalidReply):
    """A well-framed reply whose payload is larger than this call allows (its header is kept)."""

    def __init__(self, message: str, header: dict):
        super().__init__(message)
        self.header = header


# --------------------------------------------------------------------- JSON with a depth guard

_BRACKET = np.zeros(256, np.int8)
_BRACKET[[ord("["), ord("{")]] = 1
_BRACKET[[ord("]"), ord("}")]] = -1


def json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of ``raw`` as ``json.loads`` would meet it, in linear time.

    Vectorised (a few ms for 1 MiB, whatever the bytes): backslash escapes are dropped as JSON
    reads them (in a run of backslashes every second one escapes the next byte), then bytes
    between a quote and the next are inside a string and do not count. Where ``raw`` is not
    valid JSON the result may be higher than what ``json.loads`` reaches before it fails,
    never lower.
    """
    b = np.frombuffer(raw, np.uint8)
    if not b.size:
        return 0
    slash = b == ord("\\")
    if slash.any():
        before = np.concatenate(([False], slash[:-1]))
        after = np.concatenate((slash[1:], [False]))
        starts = np.flatnonzero(slash & ~before)
        ends = np.flatnonzero(slash & ~after) + 1          # one past each run of backslashes
        escaped = ends[((ends - starts) % 2 == 1) & (ends < b.size)]
        drop = slash.copy()
        drop[escaped] = True
        b = b[~drop]
    outside = (np.cumsum(b == ord('"')) % 2) == 0          # odd count so far: inside a string
    steps = np.where(outside, _BRACKET[b], 0).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def loads_bounded(raw: Union[bytes, str], *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of ``raw`` after checking its nesting depth; NaN/Infinity refused.

    Raises ``ValueError`` (with a one-line reason) for anything that is not JSON of at most
    ``max_depth`` levels, including text that is not UTF-8.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    # fewer openers than the cap cannot nest deeper than it: skip the scan (most replies)
    depth = 0 if raw.count(b"[") + raw.count(b"{") <= max_depth else json_depth(raw)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} levels deep (at most {max_depth})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:  # not reachable under the depth guard; kept a ValueError if it were
        raise ValueError("JSON nested too deep") from None


# --------------------------------------------------------------------- schema

class _Check:
    """One node of the schema: ``check(value, where)`` returns the value or raises InvalidReply."""

    def __call__(self, value: Any, where: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def _fail(where: str, what: str, value: Any):
    raise InvalidReply(f"{where}: {what} expected, got {type(value).__name__}")


class Const(_Check):
    def __init__(self, value):
        self.value = value

    def __call__(self, value, where):
        if type(value) is not type(self.value) or value != self.value:
            raise InvalidReply(f"{where}: must be {json.dumps(self.value)}")
        return value


class Int(_Check):
    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def __call__(self, value, where):
        if type(value) is not int:
            _fail(where, "an integer", value)
        if not self.lo <= value <= self.hi:
            raise InvalidReply(f"{where}: an integer in {self.lo}..{self.hi} expected")
        return value


class Str(_Check):
    def __init__(self, max_len: int, *, optional: bool = False):
        self.max_len, self.optional = max_len, optional

    def __call__(self, value, where):
        if value is None and self.optional:
            return None
        if type(value) is not str:
            _fail(where, "a string", value)
        if len(value) > self.max_len:
            raise InvalidReply(f"{where}: a string of at most {self.max_len} characters expected")
        return value


class OneOf(_Check):
    def __init__(self, *values: str):
        self.values = values

    def __call__(self, value, where):
        if type(value) is not str or value not in self.values:
            raise InvalidReply(f"{where}: one of {', '.join(self.values)} expected")
        return value


class List(_Check):
    def __init__(self, item: _Check, max_len: int):
        self.item, self.max_len = item, max_len

    def __call__(self, value, where):
        if type(value) is not list:
            _fail(where, "a list", value)
        if len(value) > self.max_len:
            raise InvalidReply(f"{where}: at most {self.max_len} items expected, got {len(value)}")
        return [self.item(v, f"{where}[{i}]") for i, v in enumerate(value)]


class Map(_Check):
    """An object with string keys of at most ``key_len`` characters and values of one kind."""

    def __init__(self, value: _Check, max_len: int, key_len: int = _NAME):
        self.value, self.max_len, self.key_len = value, max_len, key_len

    def __call__(self, value, where):
        if type(value) is not dict:
            _fail(where, "an object", value)
        if len(value) > self.max_len:
            raise InvalidReply(f"{where}: at most {self.max_len} entries expected")
        out = {}
        for k, v in value.items():
            if len(k) > self.key_len:
                raise InvalidReply(f"{where}: a key longer than {self.key_len} characters")
            out[k] = self.value(v, f"{where}[{k[:40]!r}]")
        return out


class Obj(_Check):
    """An object with these fields (required unless listed in ``optional``); other keys ignored."""

    def __init__(self, fields: dict[str, _Check], optional: dict[str, Any] | None = None):
        self.fields, self.optional = fields, dict(optional or {})

    def __call__(self, value, where):
        if type(value) is not dict:
            _fail(where, "an object", value)
        out = {}
        for name, check in self.fields.items():
            if name not in value:
                if name in self.optional:
                    out[name] = self.optional[name]
                    continue
                raise InvalidReply(f"{where}: field '{name}' is missing")
            out[name] = check(value[name], f"{where}.{name}" if where else name)
        return out


_NBYTES = Int(0, protocol.MAX_PAYLOAD)
_SHAPE = List(Int(0, _MAX_DIM), _MAX_NDIM)

#: Every reply a worker sends, by kind. This is the whole contract of ``worker.py``'s replies.
SCHEMA: dict[str, Obj] = {
    "ready": Obj({"ok": Const(True), "ready": Const(True), "nbytes": Const(0)}, {"nbytes": 0}),
    "loaded": Obj({
        "ok": Const(True),
        "cell_failures": List(Obj({"cell": Int(0, 10**6), "summary": Str(_MSG), "traceback": Str(_TB, optional=True)},
                                  {"traceback": None}), _CELLS),
        "functions": List(Str(_NAME), _FUNCTIONS),
        "answers": Map(Str(_ANSWER), 1_000),
        "nbytes": Const(0),
    }, {"cell_failures": [], "answers": {}, "nbytes": 0}),
    "returned": Obj({
        "ok": Const(True),
        "id": Int(0, 2**53),
        "outputs": List(Obj({"shape": _SHAPE}), _MAX_OUTPUTS),
        "mutated": List(Str(_NAME), _MAX_OUTPUTS),
        "nbytes": _NBYTES,
    }, {"mutated": [], "nbytes": 0}),
    "raised": Obj({
        "ok": Const(False),
        "id": Int(0, 2**53),
        "kind": OneOf(*(k.value for k in WORKER_KINDS)),
        "message": Str(_MSG),
        "traceback": Str(_TB, optional=True),
        "nbytes": Const(0),
    }, {"traceback": None, "message": "", "nbytes": 0}),
}


@dataclass(frozen=True)
class Ready:
    """The worker imported numpy and set its limits; no student code has run."""


@dataclass(frozen=True)
class LoadedCell:
    cell: int
    summary: str
    traceback: str


@dataclass(frozen=True)
class Loaded:
    """The load report: cells that raised, callables defined, written answers found."""

    cell_failures: tuple[LoadedCell, ...]
    functions: tuple[str, ...]
    answers: dict[str, str]


@dataclass(frozen=True)
class Returned:
    """A call returned: one float64 array per output, rebuilt from the payload."""

    call_id: int
    shapes: tuple[tuple[int, ...], ...]
    mutated: tuple[str, ...]

    def arrays(self, payload) -> list[np.ndarray]:
        """The outputs as ``<f8`` arrays viewing ``payload`` (no copy)."""
        out, offset = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape, dtype=np.int64))
            out.append(np.frombuffer(payload, dtype="<f8", count=n, offset=offset).reshape(shape))
            offset += 8 * n
        return out


@dataclass(frozen=True)
class Raised:
    """A call failed in a way the worker reports itself (exception, rejected value, ...)."""

    call_id: int
    kind: Outcome
    message: str
    traceback: Optional[str]


Reply = Union[Ready, Loaded, Returned, Raised]


def _checked(kind: str, header: Any) -> dict:
    return SCHEMA[kind](header, "")


def parse_reply(header: Any, expect: str, *, call_id: Optional[int] = None, n_outputs: int = 0,
                nbytes: Optional[int] = None) -> Reply:
    """Validate one reply header against :data:`SCHEMA` for what the parent asked.

    ``expect`` is ``"ready"``, ``"loaded"`` or ``"call"`` (``returned`` or ``raised``, told by
    ``ok``); for a call, ``call_id`` and ``n_outputs`` are what the request said, and
    ``nbytes`` the payload length (default: the header's own ``nbytes``).
    Raises :class:`InvalidReply` naming the first field that is wrong.
    """
    if type(header) is not dict:
        _fail("reply", "an object", header)
    if expect == "ready":
        _checked("ready", header)
        return Ready()
    if expect == "loaded":
        h = _checked("loaded", header)
        cells = tuple(LoadedCell(c["cell"], c["summary"], c["traceback"] or "") for c in h["cell_failures"])
        return Loaded(cells, tuple(h["functions"]), dict(h["answers"]))
    if expect != "call":
        raise ValueError(f"unknown reply kind {expect!r}")
    ok = header.get("ok")
    h = _checked("returned" if ok is True else "raised", header)
    if h["id"] != call_id:
        raise InvalidReply(f"id: reply to call {h['id']}, expected {call_id}")
    if ok is not True:
        return Raised(h["id"], Outcome(h["kind"]), h["message"], h["traceback"])
    shapes = tuple(tuple(o["shape"]) for o in h["outputs"])
    if len(shapes) != n_outputs:
        raise InvalidReply(f"outputs: {n_outputs} expected, got {len(shapes)}")
    total = 0
    for i, shape in enumerate(shapes):
        n = 1
        for d in shape:
            n *= d
        if n > protocol.MAX_ELEMENTS:
            raise InvalidReply(f"outputs[{i}].shape: {n} elements, more than {protocol.MAX_ELEMENTS}")
        total += 8 * n
    size = h["nbytes"] if nbytes is None else nbytes
    if total != size:
        raise InvalidReply(f"payload: the shapes announce {total} bytes, the frame carries {size}")
    return Returned(h["id"], shapes, tuple(h["mutated"]))


# --------------------------------------------------------------------- bounded frame reader

_LEN = struct.Struct("!I")


class ReplyReader:
    """Reads exactly one reply frame from a non-blocking fd, with bounded memory.

    Call :meth:`read_from` whenever the fd is readable; it returns ``(header, payload)`` once the
    frame is complete and ``None`` before. It never reads past the frame's end, so bytes a worker
    writes after its reply stay in the pipe (:meth:`has_more` tells). The header is parsed with
    :func:`loads_bounded`; a payload over ``max_payload`` raises :class:`ReplyTooLarge` (with the
    header) before any of it is read.
    """

    def __init__(self, *, max_header: int, max_payload: int):
        self.max_header, self.max_payload = max_header, max_payload
        self._len = bytearray()
        self._raw: Optional[bytearray] = None
        self._got = 0
        self.header: Optional[dict] = None
        self._payload: Optional[bytearray] = None

    def _fill(self, fd: int, buf: bytearray) -> bool:
        """Read into ``buf[self._got:]``; True when it is full. EOFError at end of stream."""
        view = memoryview(buf)[self._got:]
        if not view:
            return True
        try:
            n = os.readv(fd, [view])
        except BlockingIOError:
            return False
        except InterruptedError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return False
            raise EOFError from None
        if n == 0:
            raise EOFError("channel closed")
        self._got += n
        return self._got == len(buf)

    def read_from(self, fd: int) -> Optional[tuple[dict, memoryview]]:
        if self._raw is None:
            try:
                data = os.read(fd, 4 - len(self._len))
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    return None
                raise EOFError from None
            if not data:
                if self._len:
                    raise InvalidReply("truncated frame length")
                raise EOFError("channel closed")
            self._len += data
            if len(self._len) < 4:
                return None
            (hlen,) = _LEN.unpack(bytes(self._len))
            if hlen > self.max_header:
                raise InvalidReply(f"header of {hlen} bytes, more than {self.max_header}")
            self._raw, self._got = bytearray(hlen), 0
        if self.header is None:
            try:
                if not self._fill(fd, self._raw):
                    return None
            except EOFError:
                raise InvalidReply("truncated frame header") from None
            try:
                header = loads_bounded(bytes(self._raw))
            except ValueError as exc:
                raise InvalidReply(f"header is not valid JSON: {exc}") from None
            if type(header) is not dict:
                raise InvalidReply("header is not a JSON object")
            nbytes = header.get("nbytes", 0)
            if type(nbytes) is not int or nbytes < 0:
                raise InvalidReply("nbytes: a non-negative integer expected")
            if nbytes > self.max_payload:
                raise ReplyTooLarge(f"payload of {nbytes} bytes, more than the {self.max_payload} "
                                    "this call allows", header)
            self.header, self._raw = header, None
            self._payload, self._got = bytearray(nbytes), 0
        try:
            if not self._fill(fd, self._payload):
                return None
        except EOFError:
            raise InvalidReply("truncated frame payload") from None
        return self.header, memoryview(self._payload)

    @staticmethod
    def has_more(fd: int) -> bool:
        """Whether the worker wrote anything after its reply (a second frame, garbage)."""
        try:
            return bool(os.read(fd, 1))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False

