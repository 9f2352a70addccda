"""The isolation levels, one class each: how a worker is started, killed and how its exit reads.

``Isolation`` names them, strongest first. Every level uses the same channel (three inherited
pipes: requests, replies, output; never fd 0/1/2), the same scrubbed environment
(``WORKER_ENV``), the same rlimits (applied by the worker itself before numpy or student code
is imported) and gives every worker a fresh, empty session keyring (``keyring.py``; joined by
the level's spawner thread, never by the grading thread) and, when
the grader is root, a uid of its own (``uids.py``). They differ in what the student's code can
see and do (``docs/threat-model.md`` has the table; each claim there has a test):

``bwrap-fork`` (root only; ``BwrapFork``)
    a warm fork server per slot inside the ``bwrap`` sandbox below forks each submission into
    new pid/mount/net/ipc/uts namespaces with its own /tmp, /dev/shm and /proc, a fresh uid,
    no capabilities, ``no_new_privs``, a fresh keyring and the seccomp filter (``seccomp.py``);
    see ``forkpool.py`` and ``inside/forkserver.py``.
``bwrap`` (``Bwrap``)
    bubblewrap: new namespaces (as an ordinary user including a user namespace of its own per
    worker); an empty root holding read-only /usr (+ /lib*, /bin, /sbin), only the parts of
    the Python installation the worker needs (``layout.py``), the ``inside/`` files at
    /hwgrader, a fresh /dev and /proc, a private size-limited /tmp; no network; the seccomp
    filter via ``--seccomp FD``; as root, ``setpriv`` drops to a fresh uid with no capabilities.
``unshare`` (``Unshare``)
    the same file-system construction done by a shell script after ``unshare(1)``; no seccomp
    filter, host /dev nodes bound.
``process`` (``PlainProcess``)
    a plain child process: rlimits, scrubbed environment, fresh scratch directory, fresh
    keyring. Hides nothing. Never runs student code as root: the grader running as root drops
    it to a fresh uid, and refuses when that uid could not run the interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional

from grader.errors import SandboxError
from grader.sandbox import keyring, seccomp
from grader.sandbox.channel import WorkerPipes
from grader.sandbox.layout import PythonView, ancestors, python_view, readable_by_others
from grader.sandbox.limits import Limits, rlimit_spec
from grader.sandbox.uids import allocator


class Isolation(str, Enum):
    """How strongly a worker is isolated; ``list(Isolation)`` is strongest first."""

    BWRAP_FORK = "bwrap-fork"
    BWRAP = "bwrap"
    UNSHARE = "unshare"
    PROCESS = "process"

    def __str__(self) -> str:
        return self.value

    @property
    def sandboxed(self) -> bool:
        """Namespaces hide the host (everything but ``process``)."""
        return self is not Isolation.PROCESS

    @property
    def full(self) -> bool:
        """Hides and denies everything ``docs/threat-model.md`` promises (bwrap + seccomp)."""
        return self in (Isolation.BWRAP_FORK, Isolation.BWRAP)


#: Level names (strings, as recorded in results) that give the full guarantees.
FULL_ISOLATIONS = frozenset(i.value for i in Isolation if i.full)
#: Where ``inside/`` (worker.py, protocol.py, forkserver.py) appears in a sandbox.
WORKER_DIR_IN_SANDBOX = "/hwgrader"
INSIDE_DIR = Path(__file__).resolve().parent / "inside"
INSIDE_FILES = ("worker.py", "protocol.py", "forkserver.py")

WORKER_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}
#: What the fork server keeps inside bwrap to give each submission namespaces of its own and then
#: drop to an unprivileged uid; the submissions themselves run with no capability at all.
FORKSERVER_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL")
_SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


class ProbeFailed(Exception):
    """A level cannot run here; ``reason`` says what failed and how to fix it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Started:
    """A started worker process and what must be undone once it is gone."""

    proc: object                       # subprocess.Popen, or forkpool.ForkedProcess
    uid: Optional[int] = None          # the fresh uid it runs as (root grader), for the kill sweep
    scratch: list[str] = field(default_factory=list)   # host folders to remove once it is gone
    mountpoint: Optional[str] = None   # empty host folder the sandbox mounted its root on (rmdir only)

    def cleanup(self) -> None:
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)
        if self.mountpoint:
            try:
                os.rmdir(self.mountpoint)  # never recursive: nothing mounted on it is ever deleted
            except OSError:
                pass


def _worker_argv(python: str, worker_dir: str, pipes: WorkerPipes, limits: Limits, view: PythonView) -> list[str]:
    return [python, "-I", "-S", os.path.join(worker_dir, "worker.py"), str(pipes.req_r), str(pipes.res_w),
            "--rlimits", rlimit_spec(limits), "--path", os.pathsep.join(view.import_path)]


def _setpriv(uid: int) -> list[str]:
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]


def _popen_with_fresh_keyring(argv: list[str], **kw) -> subprocess.Popen:
    """(In a level's spawner thread.) A new empty session keyring, then the worker inherits it."""
    keyring.join_fresh_session_keyring()
    return subprocess.Popen(argv, **kw)


def _popen_kwargs(env: dict, pipes: WorkerPipes, *, extra_fds: tuple[int, ...] = (),
                  cwd: Optional[str] = None, uid: Optional[int] = None) -> dict:
    kw = dict(env=env, pass_fds=(pipes.req_r, pipes.res_w, *extra_fds), close_fds=True,
              start_new_session=True, cwd=cwd, stdin=subprocess.DEVNULL, stdout=pipes.out_w, stderr=pipes.out_w)
    if uid is not None:
        kw.update(user=uid, group=uid, extra_groups=[])
    return kw


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _kill_tree(proc: subprocess.Popen, *, sandbox_init: bool) -> None:
    if sandbox_init and proc.poll() is None:
        # Kill the sandbox's init (our child's child) first: the whole pid namespace dies with
        # it and bwrap/unshare reap it and exit. Killing the outer process first would orphan the
        # init to host pid 1, which leaves a zombie on hosts whose pid 1 does not reap.
        kids = _children(proc.pid)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if kids:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def _wait(proc, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


class Level:
    """One isolation level. Subclasses fill in ``start`` and ``requirements``.

    Workers are started from the level's own long-lived spawner threads, not from the grading
    thread: the spawner joins a fresh session keyring before each start (the grading thread
    keeps its own), and bwrap's ``--die-with-parent`` follows the thread that started it, which
    lives until ``close()``.
    """

    isolation: Isolation
    #: True when the worker's exit status is reported by a shell/bwrap as 128 + signal
    status_via_init = False

    def __init__(self, slots: int = 1):
        self._spawner = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="hwgrader-spawn")

    def popen(self, argv: list[str], env: dict, pipes: WorkerPipes, **kw) -> subprocess.Popen:
        return self._spawner.submit(_popen_with_fresh_keyring, argv, **_popen_kwargs(env, pipes, **kw)).result()

    def requirements(self) -> None:
        """Raise ``ProbeFailed`` if something this level needs is missing (fast, no process)."""

    def start(self, limits: Limits, pipes: WorkerPipes, slot: int) -> Started:
        raise NotImplementedError

    def kill(self, started: Started) -> None:
        """Kill the worker and everything it started; wait for it."""
        _kill_tree(started.proc, sandbox_init=self.status_via_init)
        _wait(started.proc, 10)

    def exit_status(self, started: Started, timeout: float = 2) -> tuple[Optional[int], Optional[int]]:
        """(exit code, signal) once the worker is gone; (None, None) if it is still running."""
        try:
            rc = started.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, None
        if rc < 0:
            return None, -rc
        if rc > 128 and self.status_via_init:
            return None, rc - 128
        return rc, None

    def close(self) -> None:
        """Release what the level holds for a batch (spawner threads, fork servers)."""
        self._spawner.shutdown(wait=True)


# ------------------------------------------------------------------ bubblewrap

def _need(program: str, package: str) -> None:
    if shutil.which(program) is None:
        raise ProbeFailed(f"{program} is not installed (apt-get install {package})")


def _seccomp_ready() -> None:
    try:
        seccomp.bpf_program()
    except SandboxError as exc:
        raise ProbeFailed(exc.message) from None


def bwrap_argv(limits: Limits, *, forkserver: bool) -> list[str]:
    """bubblewrap's options up to ``--`` (no seccomp option: the caller adds it)."""
    view = python_view()
    a = ["bwrap", "--die-with-parent", "--new-session", "--clearenv"]
    if is_root():
        # bwrap runs privileged (it must reach a prefix under /root, mode 0700), no user namespace;
        # setpriv / the fork server drop to a fresh unprivileged uid before any student code runs
        a += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
              "--cap-drop", "ALL"]
        for cap in (FORKSERVER_CAPS if forkserver else _SETPRIV_CAPS):
            a += ["--cap-add", cap]
    else:
        a += ["--unshare-all", "--cap-drop", "ALL"]  # a user namespace of its own per worker
    for k, v in WORKER_ENV.items():
        a += ["--setenv", k, v]
    a += ["--ro-bind", "/usr", "/usr"]
    for name in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(name):
            a += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            a += ["--ro-bind", name, name]
    # /tmp before the Python binds: a venv under /tmp is bound into the fresh /tmp, not hidden by it
    a += ["--perms", "1777", "--size", str(int(limits.tmp_mb) << 20), "--tmpfs", "/tmp",
          "--proc", "/proc", "--dev", "/dev"]
    made = {"/", "/usr", "/tmp"}
    remount = []
    for kind, path in view.mounts():
        for anc in ancestors(path):
            if anc not in made and not anc.startswith("/usr/"):
                a += ["--perms", "0755", "--dir", anc]
                made.add(anc)
        if kind == "empty":
            a += ["--perms", "0755", "--tmpfs", path]
            remount.append(path)
        else:
            a += ["--ro-bind", path, path]
        made.add(path)
    for target, link in view.symlinks:
        a += ["--symlink", target, link]
    for path in remount:
        a += ["--remount-ro", path]
    a += ["--ro-bind", str(INSIDE_DIR), WORKER_DIR_IN_SANDBOX, "--chdir", "/tmp"]
    if not is_root():
        # in a user namespace of its own the worker owns bwrap's root tmpfs and the folders made on
        # it: read-only, so only the private /tmp and /dev/shm take writes (tests/attacks/root_only_write)
        a += ["--remount-ro", "/"]
    return a


class Bwrap(Level):
    isolation = Isolation.BWRAP
    status_via_init = True

    def requirements(self) -> None:
        if sys.platform != "linux":
            raise ProbeFailed("bubblewrap needs Linux")
        _need("bwrap", "bubblewrap")
        if is_root():
            _need("setpriv", "util-linux")
        _seccomp_ready()

    def start(self, limits: Limits, pipes: WorkerPipes, slot: int) -> Started:
        view = python_view()
        uid = allocator().take() if is_root() else None
        bpf = seccomp.bpf_fd()
        try:
            argv = bwrap_argv(limits, forkserver=False) + ["--seccomp", str(bpf), "--"]
            if uid is not None:
                argv += _setpriv(uid)
            argv += _worker_argv(view.executable, WORKER_DIR_IN_SANDBOX, pipes, limits, view)
            proc = self.popen(argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, pipes, extra_fds=(bpf,))
        finally:
            os.close(bpf)
        return Started(proc, uid=uid)


class BwrapFork(Level):
    """bwrap + a warm fork server per slot (``forkpool.ForkPool``, owned by this level object)."""

    isolation = Isolation.BWRAP_FORK

    def __init__(self, slots: int = 1):
        from grader.sandbox.forkpool import ForkPool

        super().__init__(slots)
        self.pool = ForkPool(slots)

    def requirements(self) -> None:
        if not is_root():
            raise ProbeFailed("bwrap-fork needs root (its fork server creates namespaces and uids); "
                              "as an ordinary user use --isolation bwrap")
        Bwrap.requirements(self)

    def warm(self) -> None:
        """Start every slot's fork server now, side by side."""
        self.pool.start_all()

    def start(self, limits: Limits, pipes: WorkerPipes, slot: int) -> Started:
        uid = allocator().take()
        return Started(self.pool.spawn(slot, limits, pipes.child_fds(), uid), uid=uid)

    def kill(self, started: Started) -> None:
        # Its pid lives in the fork server's namespace: only the server can kill it (the whole
        # submission namespace dies with its pid-1 process).
        started.proc.kill()

    def close(self) -> None:
        self.pool.close()
        super().close()


# ------------------------------------------------------------------ unshare(1)

_UNSHARE_SCRIPT = r"""
set -e
R="$1"; shift
mount --make-rprivate /
mount -t tmpfs -o mode=0755,size=1m hwgroot "$R"
for d in $HWG_SYSTEM; do
  mkdir -p "$R$d"; mount --rbind "$d" "$R$d"; mount -o remount,bind,ro "$R$d" 2>/dev/null || true
done
for l in $HWG_LINKS; do ln -s "${l#*=}" "$R${l%%=*}"; done
mkdir -p "$R/tmp"; mount -t tmpfs -o "mode=1777,size=$HWG_TMP" tmp "$R/tmp"
printf '%s\n' "$HWG_MOUNTS" | while read -r kind path; do
  [ -n "$kind" ] || continue
  case "$kind" in
    dir) mkdir -p "$R$path"; mount --bind "$path" "$R$path"; mount -o remount,bind,ro "$R$path" ;;
    file) mkdir -p "$(dirname "$R$path")"; touch "$R$path"; mount --bind "$path" "$R$path"; mount -o remount,bind,ro "$R$path" ;;
    empty) mkdir -p "$R$path"; mount -t tmpfs -o size=64k,mode=0755 hidden "$R$path" ;;
    link) ln -s "${path%% *}" "$R${path#* }" ;;
  esac
done
mkdir -p "$R/hwgrader"; mount --bind "$HWG_WDIR" "$R/hwgrader"; mount -o remount,bind,ro "$R/hwgrader"
mkdir -p "$R/proc"; mount -t proc proc "$R/proc"
mkdir -p "$R/dev"
for n in null zero full random urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
mkdir -p "$R/.old"; cd "$R"; pivot_root . .old; umount -l /.old; rmdir /.old
mount -o remount,ro,bind / 2>/dev/null || true
cd /tmp
unset HWG_SYSTEM HWG_LINKS HWG_MOUNTS HWG_WDIR HWG_TMP PATH
"$@"
"""


class Unshare(Level):
    isolation = Isolation.UNSHARE
    status_via_init = True

    def requirements(self) -> None:
        if sys.platform != "linux":
            raise ProbeFailed("unshare needs Linux")
        for program in ("unshare", "mount", "pivot_root"):
            _need(program, "util-linux mount")
        if is_root():
            _need("setpriv", "util-linux")

    def start(self, limits: Limits, pipes: WorkerPipes, slot: int) -> Started:
        view = python_view()
        root = is_root()
        uid = allocator().take() if root else None
        system, links = ["/usr"], []
        for name in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):
            if os.path.islink(name):
                links.append(f"{name}={os.readlink(name)}")
            elif os.path.isdir(name):
                system.append(name)
        ops = [f"{kind} {path}" for kind, path in view.mounts()]
        ops += [f"link {target} {link}" for target, link in view.symlinks]
        mountpoint = tempfile.mkdtemp(prefix="hwgrader-root-")  # empty dir, removed after the worker
        os.chmod(mountpoint, 0o755)
        inner = _worker_argv(view.executable, WORKER_DIR_IN_SANDBOX, pipes, limits, view)
        if uid is not None:
            inner = _setpriv(uid) + inner
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts"]
        if not root:
            argv += ["--user", "--map-root-user"]
        argv += ["--", "/bin/sh", "-c", _UNSHARE_SCRIPT, "hwgrader-sandbox", mountpoint] + inner
        env = dict(WORKER_ENV)
        env.update(PATH="/usr/bin:/bin:/usr/sbin:/sbin", HWG_SYSTEM=" ".join(shlex.quote(b) for b in system),
                   HWG_LINKS=" ".join(links), HWG_MOUNTS="\n".join(ops), HWG_WDIR=str(INSIDE_DIR),
                   HWG_TMP=f"{int(limits.tmp_mb)}m")
        try:
            proc = self.popen(argv, env, pipes)
        except BaseException:
            os.rmdir(mountpoint)
            raise
        return Started(proc, uid=uid, mountpoint=mountpoint)


# ------------------------------------------------------------------ plain process

class PlainProcess(Level):
    isolation = Isolation.PROCESS

    def requirements(self) -> None:
        if is_root():
            unreachable = [p for p in python_view().all_paths() if not readable_by_others(p)]
            if unreachable:
                raise ProbeFailed(
                    f"the grader runs as root and an unprivileged uid cannot read {unreachable[0]}, so the "
                    "worker could not drop root; student code is never run as root: run hwgrader as an "
                    "ordinary user, or use a Python installed where every user can read it")

    def start(self, limits: Limits, pipes: WorkerPipes, slot: int) -> Started:
        try:
            self.requirements()  # cheap; never start a root worker, even if the caller skipped the probe
        except ProbeFailed as exc:
            raise SandboxError(exc.reason) from None
        view = python_view()
        workdir = tempfile.mkdtemp(prefix="hwgrader-work-")  # a fresh working directory, never the grader's
        worker_dir = os.path.join(workdir, ".hwgrader")
        os.mkdir(worker_dir)
        for name in INSIDE_FILES:  # a private copy: the package folder may not be readable by the uid
            shutil.copyfile(INSIDE_DIR / name, os.path.join(worker_dir, name))
        env = dict(WORKER_ENV)
        env["HOME"] = env["TMPDIR"] = workdir
        if sys.platform == "win32":
            env["SYSTEMROOT"] = os.environ.get("SYSTEMROOT", r"C:\Windows")
        uid = None
        if is_root():
            uid = allocator().take()
            os.chmod(workdir, 0o700)
            for path in (workdir, worker_dir, *(os.path.join(worker_dir, n) for n in INSIDE_FILES)):
                os.chown(path, uid, uid)
        try:
            proc = self.popen(_worker_argv(view.executable, worker_dir, pipes, limits, view), env, pipes,
                              cwd=workdir, uid=uid)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return Started(proc, uid=uid, scratch=[workdir])

    def kill(self, started: Started) -> None:
        _kill_tree(started.proc, sandbox_init=False)
        if started.uid is not None:
            # every process of the worker's own uid, including setsid()'d daemons
            try:
                subprocess.run(["kill", "-KILL", "-1"], user=started.uid, group=started.uid, extra_groups=[],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
            except (OSError, subprocess.SubprocessError):
                pass
        _wait(started.proc, 10)


def make_level(isolation: Isolation, slots: int = 1) -> Level:
    """A fresh level object for a batch of ``slots`` concurrent workers."""
    isolation = Isolation(isolation)
    if isolation is Isolation.BWRAP_FORK:
        return BwrapFork(slots)
    return {Isolation.BWRAP: Bwrap, Isolation.UNSHARE: Unshare, Isolation.PROCESS: PlainProcess}[isolation](slots)
