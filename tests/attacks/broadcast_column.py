"""Return an (n, 1) column that broadcasts against the expected (n, 2) array."""
import numpy as np


def urn_emissions(red, blue):
    return np.full((len(red), 1), 0.5)
