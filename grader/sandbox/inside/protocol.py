"""Framing shared by the trusted parent and the untrusted worker.

A frame is ``!I`` (big-endian, 4 bytes) header length, a UTF-8 JSON object
(the header, at most ``max_header`` bytes), then ``header["nbytes"]`` bytes of
payload.  Arrays travel as raw little-endian bytes described in the header;
nothing is ever pickled or evaluated.

This module is imported by ``worker.py`` *inside the sandbox* as a top-level
module (the ``grader`` package is not visible there), so it depends on the
standard library and numpy only and must not import anything from ``grader``.
``grader.errors.ProtocolError`` is this module's ``ProtocolError``.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

__all__ = [
    "ProtocolError", "write_frame", "read_frame", "encode_frame", "FrameDecoder",
    "encode_values", "decode_values", "MAX_HEADER", "MAX_PAYLOAD", "MAX_ELEMENTS",
]

MAX_HEADER = 1 << 20            # 1 MiB of JSON
MAX_PAYLOAD = 1 << 30           # hard ceiling on one frame's raw bytes
MAX_ELEMENTS = 10_000_000       # per array, both directions
MAX_REQUEST_HEADER = 64 << 20   # parent -> worker (a load carries the student's sources)

_LEN = struct.Struct("!I")
_DTYPES = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8")}


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame or value."""


# --------------------------------------------------------------------- frames

def encode_frame(header: dict, payload: bytes = b"", *, max_header: int = MAX_HEADER) -> bytes:
    """Bytes of one frame; sets ``header["nbytes"]`` to ``len(payload)``."""
    payload = bytes(payload) if not isinstance(payload, (bytes, bytearray, memoryview)) else payload
    header = dict(header)
    header["nbytes"] = len(payload)
    raw = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(raw) > max_header:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds {max_header}")
    return b"".join((_LEN.pack(len(raw)), raw, payload))


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_frame(fd_or_file, header: dict, payload: bytes = b"", *, max_header: int = MAX_HEADER) -> None:
    """Write one frame to a file descriptor (int) or a binary file object."""
    data = encode_frame(header, payload, max_header=max_header)
    if isinstance(fd_or_file, int):
        _write_all(fd_or_file, data)
    else:
        fd_or_file.write(data)
        fd_or_file.flush()


def _read_exact(f, n: int) -> bytes:
    if isinstance(f, int):
        chunks, left = [], n
        while left:
            b = os.read(f, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
    else:
        data = f.read(n)
        if data is None:
            data = b""
    return data


def _parse_header(raw: bytes, max_payload: int) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame header is not UTF-8 JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    nbytes = header.get("nbytes", 0)
    if type(nbytes) is not int or nbytes < 0:
        raise ProtocolError("frame header has an invalid 'nbytes'")
    if nbytes > max_payload:
        raise ProtocolError(f"frame payload of {nbytes} bytes exceeds the limit {max_payload}")
    return header


def read_frame(file, *, max_header: int = MAX_HEADER, max_payload: int = MAX_PAYLOAD):
    """Read one frame from a binary file object or fd; returns ``(header, payload)``.

    Raises ``EOFError`` on a clean end of stream (no byte of a new frame) and
    ``ProtocolError`` on anything malformed or oversized.
    """
    head = _read_exact(file, 4)
    if not head:
        raise EOFError("channel closed")
    if len(head) < 4:
        raise ProtocolError("truncated frame length")
    (hlen,) = _LEN.unpack(head)
    if hlen > max_header:
        raise ProtocolError(f"frame header of {hlen} bytes exceeds the limit {max_header}")
    raw = _read_exact(file, hlen)
    if len(raw) < hlen:
        raise ProtocolError("truncated frame header")
    header = _parse_header(raw, max_payload)
    nbytes = header.get("nbytes", 0)
    payload = _read_exact(file, nbytes) if nbytes else b""
    if len(payload) < nbytes:
        raise ProtocolError("truncated frame payload")
    return header, payload


class FrameDecoder:
    """Incremental decoder for a non-blocking reader (the parent side).

    ``feed(data)`` returns the list of complete ``(header, payload)`` frames;
    limits are checked as soon as a length or header is known, so an oversized
    frame is refused before its bytes are buffered.
    """

    def __init__(self, *, max_header: int = MAX_HEADER, max_payload: int = MAX_PAYLOAD):
        self.max_header, self.max_payload = max_header, max_payload
        self._buf = bytearray()
        self._header = None
        self._hlen = None

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list:
        self._buf += data
        frames = []
        while True:
            if self._header is None:
                if self._hlen is None:
                    if len(self._buf) < 4:
                        break
                    (self._hlen,) = _LEN.unpack(bytes(self._buf[:4]))
                    del self._buf[:4]
                    if self._hlen > self.max_header:
                        raise ProtocolError(f"frame header of {self._hlen} bytes exceeds the limit {self.max_header}")
                if len(self._buf) < self._hlen:
                    break
                raw = bytes(self._buf[: self._hlen])
                del self._buf[: self._hlen]
                self._header = _parse_header(raw, self.max_payload)
            nbytes = self._header["nbytes"] if "nbytes" in self._header else 0
            if len(self._buf) < nbytes:
                break
            payload = bytes(self._buf[:nbytes])
            del self._buf[:nbytes]
            frames.append((self._header, payload))
            self._header, self._hlen = None, None
        return frames


# --------------------------------------------------------------------- values

def encode_values(values):
    """``values`` (np arrays of f8/i8-compatible dtype, Python/numpy ints and floats)
    -> ``(descs, payload)``. Arrays are sent as contiguous little-endian bytes."""
    descs, chunks, offset = [], [], 0
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            raise ProtocolError("booleans are not a wire type")
        if isinstance(v, (int, np.integer)) and not isinstance(v, np.ndarray):
            descs.append({"kind": "int", "value": int(v)})
            continue
        if isinstance(v, (float, np.floating)) and not isinstance(v, np.ndarray):
            f = float(v)
            if math.isfinite(f):
                descs.append({"kind": "float", "value": f})
            else:  # JSON has no NaN/inf: send as a 0-d array
                descs.append({"kind": "array", "dtype": "f8", "shape": []})
                chunks.append(np.array(f, dtype="<f8").tobytes())
            continue
        arr = np.asarray(v)
        if arr.dtype.kind in "iub":
            code = "i8"
        elif arr.dtype.kind == "f":
            code = "f8"
        else:
            raise ProtocolError(f"cannot send an array of dtype {arr.dtype}")
        data = np.ascontiguousarray(arr, dtype=_DTYPES[code]).tobytes()
        descs.append({"kind": "array", "dtype": code, "shape": [int(s) for s in arr.shape]})
        chunks.append(data)
        offset += len(data)
    return descs, b"".join(chunks)


def _desc_nbytes(d, max_elements):
    if not isinstance(d, dict):
        raise ProtocolError("value descriptor is not an object")
    kind = d.get("kind")
    if kind in ("int", "float"):
        v = d.get("value")
        if kind == "int" and type(v) is not int:
            raise ProtocolError("int descriptor without an integer value")
        if kind == "float" and type(v) not in (int, float):
            raise ProtocolError("float descriptor without a number value")
        return 0
    if kind != "array":
        raise ProtocolError(f"unknown value kind {kind!r}")
    dtype = d.get("dtype")
    if dtype not in _DTYPES:
        raise ProtocolError(f"array dtype {dtype!r} is not one of f8, i8")
    shape = d.get("shape")
    if not isinstance(shape, list) or len(shape) > 32 or any(type(s) is not int or s < 0 for s in shape):
        raise ProtocolError("array shape must be a list of non-negative ints")
    n = 1
    for s in shape:
        n *= s
    if n > max_elements:
        raise ProtocolError(f"array of {n} elements exceeds the limit {max_elements}")
    return n * 8


def decode_values(descs, payload: bytes, *, max_elements: int = MAX_ELEMENTS) -> list:
    """Inverse of ``encode_values``; validates every descriptor and that the
    payload length is exactly the sum of the array sizes."""
    if not isinstance(descs, list):
        raise ProtocolError("value descriptors are not a list")
    sizes = [_desc_nbytes(d, max_elements) for d in descs]
    if sum(sizes) != len(payload):
        raise ProtocolError(f"payload has {len(payload)} bytes, descriptors announce {sum(sizes)}")
    out, offset = [], 0
    view = memoryview(payload)
    for d, size in zip(descs, sizes):
        kind = d["kind"]
        if kind == "int":
            out.append(int(d["value"]))
        elif kind == "float":
            out.append(float(d["value"]))
        else:
            arr = np.frombuffer(view[offset: offset + size], dtype=_DTYPES[d["dtype"]])
            out.append(arr.reshape(tuple(d["shape"])).copy())
            offset += size
    return out
