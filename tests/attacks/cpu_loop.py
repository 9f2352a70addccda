"""Busy loop forever (ignores SIGINT/SIGTERM/SIGXCPU)."""
import signal


def urn_emissions(red, blue):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGXCPU):
        signal.signal(s, signal.SIG_IGN)
    x = 0
    while True:
        x += 1
