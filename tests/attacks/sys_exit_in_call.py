"""sys.exit(0) / raise SystemExit inside the call."""
import sys


def urn_emissions(red, blue):
    sys.exit(0)
