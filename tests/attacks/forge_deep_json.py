"""Write a reply frame whose JSON header is nested 200 000 deep on the real reply channel, then exit:
a parent that hands it to json.loads unguarded dies of RecursionError (batch fails, exit 3)."""
import os
import struct
import sys


def urn_emissions(red, blue):
    f = sys._getframe(1)
    while f is not None and not ("cid" in f.f_locals and "self" in f.f_locals):
        f = f.f_back
    fd = f.f_locals["self"].res_fd if f is not None else 4
    header = b"[" * 200_000
    os.write(fd, struct.pack("!I", len(header)) + header)
    os._exit(0)
