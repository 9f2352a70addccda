"""sys.exit(0) at import, after defining a (wrong) function: the grader must survive and still grade it."""
import sys
import numpy as np


def urn_emissions(red, blue):
    return np.zeros((len(red), 2))


sys.exit(0)
