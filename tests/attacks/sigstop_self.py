"""Stop itself with SIGSTOP (and its process group): no CPU, no exit, no reply."""
import os
import signal


def urn_emissions(red, blue):
    try:
        os.killpg(0, signal.SIGSTOP)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGSTOP)
