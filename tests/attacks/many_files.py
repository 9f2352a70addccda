"""Open thousands of files / pipes and keep them; then return the wrong answer."""
import os
import numpy as np

HOLD = []


def urn_emissions(red, blue):
    for i in range(5000):
        try:
            HOLD.append(os.open("/dev/null", os.O_RDONLY))
            HOLD.extend(os.pipe())
        except OSError:
            break
    return np.zeros((len(red), 2))
