"""Write gigabytes to stdout and stderr."""
import os


def urn_emissions(red, blue):
    chunk = b"A" * (1 << 20)
    for _ in range(4096):
        os.write(1, chunk)
        os.write(2, chunk)
