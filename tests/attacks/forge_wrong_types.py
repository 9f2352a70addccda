"""Forge well-framed replies with the right call id whose fields have the wrong types ("mutated": 5,
a list for "kind", "answers" as a list, ...): a parent that iterates or hashes them unchecked crashes."""
import json
import os
import struct
import sys

import numpy as np

CALLS = [0]


def urn_emissions(red, blue):
    f = sys._getframe(1)
    while f is not None and not ("cid" in f.f_locals and "self" in f.f_locals):
        f = f.f_back
    fd, cid = (f.f_locals["self"].res_fd, f.f_locals["cid"]) if f is not None else (4, 1)
    n = len(red)
    forged = [
        {"ok": True, "id": cid, "outputs": [{"shape": [n, 2]}], "mutated": 5, "nbytes": 16 * n},
        {"ok": False, "id": cid, "kind": ["exception"], "message": "x"},
        {"ok": True, "id": cid, "outputs": {"shape": [n, 2]}, "nbytes": 16 * n},
        {"ok": True, "id": cid, "outputs": [{"shape": [True, 2.5]}], "nbytes": 16 * n},
    ][CALLS[0] % 4]
    CALLS[0] += 1
    hdr = json.dumps(forged).encode()
    payload = np.full((n, 2), 0.5).tobytes() if forged["ok"] else b""
    os.write(fd, struct.pack("!I", len(hdr)) + hdr + payload)
    os._exit(0)
