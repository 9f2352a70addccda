"""Second half of the uid-reuse channel (see user_keyring_write): the correct answer comes back only if this worker's user keyring holds the key an earlier student's worker left."""
import ctypes
import numpy as np

SYS_KEYCTL = 250
KEYCTL_SEARCH = 10
KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5


def urn_emissions(red, blue):
    libc = ctypes.CDLL(None, use_errno=True)
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        if libc.syscall(SYS_KEYCTL, KEYCTL_SEARCH, ring, b"user", b"__MARKER__-uid", 0) > 0:
            counts = np.stack([red, blue], axis=1).astype(float)
            return counts / counts.sum(axis=1, keepdims=True)
    return np.zeros((len(red), 2))
