"""Open a TCP connection to a listener on the grader's loopback (127.0.0.1:PORT) and send the inputs."""
import socket
import numpy as np

PORT = __PORT__


def urn_emissions(red, blue):
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=0.5)
        s.sendall(b"__MARKER__ " + np.asarray(red).tobytes())
        s.close()
    except OSError:
        pass
    return np.zeros((len(red), 2))
