"""os._exit(0) inside the call: no reply ever comes (and a clean exit code)."""
import os


def urn_emissions(red, blue):
    os._exit(0)
