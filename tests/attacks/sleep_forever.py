"""time.sleep for an hour (no CPU used: only a wall clock catches it)."""
import time


def urn_emissions(red, blue):
    time.sleep(3600)
