"""Return zeros, then a background thread writes the right answer into the returned array 0.2 s later.

A grader that validated early and compared late (or shared the array) would score it. The worker
snapshots at return, so it sees zeros. (A thread racing the microseconds between return and the
snapshot only gets its own computed values graded: not a breach, hence the delay.)
"""
import threading
import time
import numpy as np


def urn_emissions(red, blue):
    c = np.stack([red, blue], axis=1).astype(float)
    right = c / c.sum(axis=1, keepdims=True)
    out = np.zeros_like(right)

    def later():
        time.sleep(0.2)
        for _ in range(100):
            out[...] = right
            time.sleep(0.001)

    threading.Thread(target=later, daemon=True).start()
    return out
