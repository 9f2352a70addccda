"""Return a (1, 2) row (the first urn's emission row) that broadcasts against the expected (n, 2) array."""
import numpy as np


def urn_emissions(red, blue):
    return np.array([[0.5, 0.5]])
