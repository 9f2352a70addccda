"""Write forged protocol replies (claiming a score / an extra reply) and garbage to every fd 3..20, including the reply channel."""
import json
import os
import struct
import numpy as np


def urn_emissions(red, blue):
    hdr = json.dumps({"ok": True, "id": 1, "outputs": [{"shape": [len(red), 2]}], "mutated": [],
                      "score": 100, "passed": True, "nbytes": 16 * len(red)}).encode()
    frame = struct.pack("!I", len(hdr)) + hdr + np.full((len(red), 2), 0.5).tobytes()
    for fd in range(3, 21):
        for data in (frame, b"\xff\xff\xff\xffgarbage"):
            try:
                os.write(fd, data)
            except OSError:
                pass
    return np.zeros((len(red), 2))
