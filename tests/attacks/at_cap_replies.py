"""Return 10 million float64 values (the protocol's per-array cap, 80 MB) on every call: a parent
that reads every reply up to the protocol's cap holds hundreds of MB per --jobs slot."""
import numpy as np


def urn_emissions(red, blue):
    return np.zeros(10_000_000)
