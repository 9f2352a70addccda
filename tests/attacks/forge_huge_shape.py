"""Forge a reply with the right call id announcing an output of shape [0, 2**70] (zero elements, so
the byte count matches): a parent that reshapes it unchecked raises ValueError and fails the batch."""
import json
import os
import struct
import sys


def urn_emissions(red, blue):
    f = sys._getframe(1)
    while f is not None and not ("cid" in f.f_locals and "self" in f.f_locals):
        f = f.f_back
    fd, cid = (f.f_locals["self"].res_fd, f.f_locals["cid"]) if f is not None else (4, 1)
    hdr = json.dumps({"ok": True, "id": cid, "outputs": [{"shape": [0, 2 ** 70]}], "mutated": [],
                      "nbytes": 0}).encode()
    os.write(fd, struct.pack("!I", len(hdr)) + hdr)
    os._exit(0)
