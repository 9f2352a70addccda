"""First half of a uid-reuse channel: leave a key in this uid's user keyring (it outlives the process); user_keyring_read, graded later, scores only if it finds it, i.e. if a uid or its keyring was reused."""
import ctypes
import numpy as np

SYS_ADD_KEY = 248
KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5


def urn_emissions(red, blue):
    libc = ctypes.CDLL(None, use_errno=True)
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        libc.syscall(SYS_ADD_KEY, b"user", b"__MARKER__-uid", b"from an earlier student", 23, ring)
    return np.zeros((len(red), 2))
