"""Write a sentinel file in the host's /tmp (and /dev/shm, /var/tmp): visible to the grader only without a mount namespace."""
import numpy as np

PATH = "__SENTINEL__"


def urn_emissions(red, blue):
    for p in (PATH, PATH.replace("/tmp/", "/dev/shm/"), PATH.replace("/tmp/", "/var/tmp/")):
        try:
            with open(p, "w") as f:
                f.write("pwned")
        except OSError:
            pass
    return np.zeros((len(red), 2))
