"""os._exit(0) at import: the worker process disappears while loading."""
import os
import numpy as np


def urn_emissions(red, blue):
    return np.zeros((len(red), 2))


os._exit(0)
