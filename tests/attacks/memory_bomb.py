"""Allocate and touch memory until something gives."""
import numpy as np


def urn_emissions(red, blue):
    hog = []
    while True:
        hog.append(np.ones(50_000_000))
