"""Fork server: a warm, sandboxed Python that forks one fresh worker per submission.

Untrusted side, like ``worker.py``: stdlib + numpy only, shipped next to it and
started as ``python -I -S forkserver.py CTRL_FD --path DIR:DIR... --seccomp-fd FD
--tmp-rebind DIR:DIR...`` *inside* the
bwrap sandbox, which already hides the host (filesystem, network, environment).
It runs as root there, with only CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID,
CAP_SETPCAP and CAP_KILL, and holds nothing secret: it was started with the
worker files only and never receives a reference, an input or an answer.

Why: importing numpy (and cvxopt) is most of a worker's start-up (~70 ms).
Imported once here, each submission costs a fork (~2 ms). Per submission::

    fork server --fork--> C --unshare(pid, mount, net, ipc, uts)--fork--> I (pid 1 of the new pid ns)
                                                                           |--fork--> W (the worker)

``C`` reports ``I``'s pid and exits (``I`` is re-parented to the server, a child
subreaper). ``I`` mounts a fresh /tmp, /dev/shm and /proc in its own mount
namespace, drops every capability (bounding set included) and becomes the
unprivileged worker uid with no_new_privs, joins a new empty session keyring,
installs the seccomp filter the parent compiled (read once from ``--seccomp-fd``; the same
program bwrap gets for ``--isolation bwrap``), then forks ``W``, reaps orphans and
exits with ``W``'s status (128 + n for a signal). ``W`` applies the rlimits,
takes the channel and output pipes and runs ``worker._Worker``. When ``I``
dies, the kernel kills everything left in that pid namespace: no daemon
survives a submission, and no two submissions ever share a process, a /tmp
or a uid.

Control channel (a SOCK_SEQPACKET socket from the parent): one JSON request,
one JSON reply. ``spawn`` (uid, rlimits, tmp_mb; with the worker's three pipe
fds attached) -> ``{"pid"}``; ``kill`` (pid) -> ``{"status"}``; ``wait`` (pid,
timeout) -> ``{"status"}`` (null while it runs). Statuses are ``{"code"}`` or
``{"signal"}``.
"""

import ctypes
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I drops the script dir

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 24, 36, 38, 22
SECCOMP_MODE_FILTER = 2
KEYCTL_JOIN_SESSION_KEYRING = 1
_LAST_CAP = 63
_MAX_REQUEST = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                       ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")


def _status(raw):
    if os.WIFSIGNALED(raw):
        return {"signal": os.WTERMSIG(raw)}
    return {"code": os.WEXITSTATUS(raw)}


_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine)
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _join_fresh_session_keyring():
    """A new, empty session keyring owned by the worker's uid (not the server's, not the grader's)."""
    if _SYS_KEYCTL is None:
        raise OSError("no keyctl system call number for this architecture")
    if _libc.syscall(_SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(err)}")


def _install_seccomp(program):
    """Load the compiled filter (needs no_new_privs); inherited by every process forked after."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def _clear_inheritable_caps():
    """capset(all zero): the inheritable set too, as ``setpriv --inh-caps=-all`` does for bwrap."""
    if _SYS_CAPSET is None:
        return  # other architectures: no_new_privs still stops exec from gaining anything
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.syscall(_SYS_CAPSET, header, data), "capset")


def _become_sandboxed_init(uid, tmp_mb, program, tmp_rebinds):
    """In I: private mounts of its own, then no privileges, a fresh keyring and the filter."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # a venv under /tmp is bound into the server's /tmp: keep hold of it across the fresh /tmp
    held = [(path, os.open(path, os.O_PATH)) for path in tmp_rebinds]
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(tmp_mb)}m,mode=1777")
    for path, fd in held:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            open(path, "wb").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=1777")
    for cap in range(_LAST_CAP + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the kernel's last cap: fine
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)  # a non-root uid: permitted and effective capabilities are cleared
    _clear_inheritable_caps()
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _join_fresh_session_keyring()
    _install_seccomp(program)
    os.chdir("/tmp")


def _run_worker(fds, rlimits):
    """In W: rlimits, the pipes on their numbers, nothing else open; then serve."""
    import worker  # already imported by the server: this is a dictionary lookup

    req_r, res_w, out_w = fds
    worker._apply_rlimits(rlimits)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    keep = sorted({0, 1, 2, req_r, res_w})
    low = 3
    for fd in keep[3:]:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    sys.argv = [worker.__file__, str(req_r), str(res_w)]  # as if started as its own process
    import random  # warm: imported by the server (``main``)

    random.seed()  # fresh entropy, as a new interpreter would have: forks share the server's state
    worker.np.random.seed()
    w = worker._Worker(req_r, res_w)
    w._send({"ok": True, "ready": True})
    code = w.serve()
    w._flush()
    os._exit(code)


def _init_main(uid, tmp_mb, fds, rlimits, program, tmp_rebinds):
    """I: pid 1 of the submission's namespace. Never returns."""
    try:
        _become_sandboxed_init(uid, tmp_mb, program, tmp_rebinds)
    except BaseException as exc:  # noqa: BLE001 -- report on the output pipe, then die
        os.write(fds[2], f"[hwgrader fork server: sandbox setup failed: {exc}]\n".encode())
        os._exit(70)
    child = os.fork()
    if child == 0:
        try:
            _run_worker(fds, rlimits)
        finally:
            os._exit(70)
    null = os.open("/dev/null", os.O_RDWR)
    for std in (0, 1, 2):  # nothing of the server's stays open in here
        os.dup2(null, std)
    os.closerange(3, 1 << 16)
    while True:  # reap orphans; leave with the worker's status
        try:
            pid, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(70)
        except InterruptedError:
            continue
        if pid == child:
            st = _status(raw)
            os._exit(128 + st["signal"] if "signal" in st else st["code"])


class ForkServer:
    def __init__(self, ctrl, program, tmp_rebinds):
        self.ctrl = ctrl
        self.program, self.tmp_rebinds = program, tmp_rebinds
        self.reaped = {}  # pid -> status, for deaths noticed before they were asked about

    def spawn(self, req, fds):
        report_r, report_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        c = os.fork()
        if c == 0:  # C
            try:
                self.ctrl.close()
                os.close(report_r)
                _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
                       "unshare")
                i = os.fork()
                if i == 0:
                    os.close(report_w)
                    _init_main(int(req["uid"]), int(req["tmp_mb"]), fds, str(req["rlimits"]), self.program,
                               self.tmp_rebinds)
                os.write(report_w, str(i).encode())
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        os.close(report_w)
        with os.fdopen(report_r, "rb") as r:
            text = r.read()
        os.waitpid(c, 0)
        if not text:
            raise OSError("the submission's sandbox could not be created")
        return int(text)

    def status(self, pid, timeout):
        if pid in self.reaped:
            return self.reaped.pop(pid)
        deadline = time.monotonic() + timeout
        while True:
            try:
                got, raw = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return self.reaped.pop(pid, {"code": None})
            if got == pid:
                return _status(raw)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)

    def kill(self, pid):
        try:
            os.kill(pid, 9)  # pid 1 of its namespace: everything in it dies with it
        except ProcessLookupError:
            pass
        return self.status(pid, 10.0)

    def serve(self):
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.ctrl, _MAX_REQUEST, 3)
            except InterruptedError:
                continue
            if not msg:
                return
            try:
                req = json.loads(msg)
                op = req.get("op")
                if op == "spawn":
                    if len(fds) != 3:
                        raise ValueError("spawn needs 3 fds")
                    reply = {"ok": True, "pid": self.spawn(req, fds)}
                    fds = []
                elif op == "kill":
                    reply = {"ok": True, "status": self.kill(int(req["pid"]))}
                elif op == "wait":
                    reply = {"ok": True, "status": self.status(int(req["pid"]), float(req.get("timeout", 0)))}
                else:
                    raise ValueError(f"unknown op {op!r}")
            except Exception as exc:  # noqa: BLE001 -- the parent decides what a failure means
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            for fd in fds:
                os.close(fd)
            self.ctrl.send(json.dumps(reply).encode())


def main():
    ctrl_fd = int(sys.argv[1])

    def option(name):
        value = sys.argv[sys.argv.index(name) + 1] if name in sys.argv else ""
        return [p for p in value.split(os.pathsep) if p]

    paths = option("--path")
    tmp_rebinds = option("--tmp-rebind")
    seccomp_fd = int(sys.argv[sys.argv.index("--seccomp-fd") + 1])
    with os.fdopen(seccomp_fd, "rb") as f:
        program = f.read()
    if not program or len(program) % 8:
        raise SystemExit(f"fork server: a seccomp program of {len(program)} bytes")
    sys.path.extend(p for p in paths if p not in sys.path)
    import worker  # noqa: F401  -- numpy and the protocol, imported once for every submission
    import random  # noqa: F401  -- both re-seeded in every worker (``_run_worker``): numpy 2 loads
    import numpy.random  # noqa: F401  -- numpy.random lazily, and that costs each worker ~20 ms

    try:
        import cvxopt  # noqa: F401  -- most submissions import it: warm it too
        import cvxopt.solvers  # noqa: F401
    except ImportError:
        pass
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "subreaper")
    ctrl = socket.socket(fileno=ctrl_fd)
    ctrl.send(json.dumps({"ok": True, "ready": True}).encode())
    ForkServer(ctrl, program, tmp_rebinds).serve()
    os._exit(0)


if __name__ == "__main__":
    main()
