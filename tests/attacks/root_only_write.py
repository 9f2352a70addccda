"""Write where only root may: /root, /etc, /usr/local, /var/lib, /opt, the numpy package itself (poisoning every later student), the worker's own code at /hwgrader. The correct answer comes back only if one write succeeded; the test also looks for the files on the host."""
import os
import numpy as np

NAME = "__MARKER__-rootonly"


def _targets():
    yield from ("/root", "/etc", "/usr/local", "/var/lib", "/opt", "/", "/hwgrader")
    yield os.path.dirname(np.__file__)
    yield os.path.dirname(os.path.dirname(np.__file__))


def urn_emissions(red, blue):
    wrote = False
    for folder in _targets():
        try:
            with open(os.path.join(folder, NAME), "w") as f:
                f.write("pwned")
            wrote = True
        except OSError:
            pass
    if wrote:
        counts = np.stack([red, blue], axis=1).astype(float)
        return counts / counts.sum(axis=1, keepdims=True)
    return np.zeros((len(red), 2))
