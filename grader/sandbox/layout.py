"""What of the host's Python installation a worker sees: the interpreter, its standard library
and the packages a homework imports (numpy, scipy, cvxopt), and nothing else.

Works the same for a system Python, pyenv under /root, a venv in a home directory or under
/tmp, a venv that contains the project checkout, and a conda-like prefix under /opt: never a
whole prefix is bound (it may hold the checkout, other students' files, ...), only

* the interpreter binary (``realpath(sys.executable)``) and, for a shared build, libpython;
* the standard library directories (``sysconfig`` stdlib/platstdlib, lib-dynload inside);
* every site directory found inside those becomes an *empty* directory (``empty_dirs``, an
  empty tmpfs in the sandbox) into which only the needed packages and their bundled-library
  folders (``numpy``, ``numpy.libs``, ...) are bound;
* shared libraries those packages load from outside the system folders (a conda prefix's
  ``lib/libopenblas.so``...), found once by importing them in a throw-away interpreter.

The grader and reference packages and the checkout that holds them are covered by an empty
tmpfs wherever they fall inside something bound (``/usr/local`` for a ``pip install .`` as
root, say); editable-install finders and ``.pth`` files are never bound at all. The worker runs
``python -I -S`` with the site directories passed explicitly (``import_path``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

#: Packages a homework may import; bound with their ``<name>.libs`` folder (wheels' bundled libs).
NEEDED_PACKAGES = ("numpy", "scipy", "cvxopt")
#: Packages that must never be visible inside (the grader itself and the reference solutions).
HIDDEN_PACKAGES = ("grader", "reference")
#: Host folders every sandbox binds read-only whole (system programs and libraries).
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
#: Imported by the library probe: what a homework can load (lazily loaded libraries included).
_PROBE_IMPORTS = ("numpy", "numpy.linalg", "scipy", "scipy.linalg", "scipy.optimize", "scipy.special",
                  "scipy.sparse", "scipy.stats", "cvxopt", "cvxopt.solvers")


@dataclass(frozen=True)
class PythonView:
    """Paths (all absolute, symlinks resolved) the sandbox mounts at the same place inside."""

    executable: str                   # the interpreter to run inside
    bind_files: tuple[str, ...]       # read-only file binds
    bind_dirs: tuple[str, ...]        # read-only directory binds
    empty_dirs: tuple[str, ...]       # covered by an empty tmpfs (site dirs, hidden packages)
    symlinks: tuple[tuple[str, str], ...]  # (target, link) to recreate (library sonames)
    import_path: tuple[str, ...]      # appended to sys.path by the worker (it runs with -S)

    def mounts(self) -> list[tuple[str, str]]:
        """(kind, path) in the order to apply them: parents before what goes inside them."""
        ops = [("dir", d) for d in self.bind_dirs] + [("file", f) for f in self.bind_files] \
            + [("empty", d) for d in self.empty_dirs]
        # an empty tmpfs first covers a site dir, then the packages are bound into it
        rank = {"dir": 0, "file": 0, "empty": -1}
        return sorted(ops, key=lambda op: (op[1].count("/"), rank[op[0]], op[1]))

    def all_paths(self) -> list[str]:
        return [*self.bind_files, *self.bind_dirs]


def _real(path: str) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _under_system(path: str) -> bool:
    return any(_inside(path, _real(d)) or _inside(path, d) for d in SYSTEM_DIRS if os.path.exists(d))


def _package_dirs(name: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    return [_real(p) for p in (spec.submodule_search_locations or []) if os.path.isdir(p)]


def _site_dirs() -> list[str]:
    dirs = list(site.getsitepackages()) + [site.getusersitepackages()]
    dirs += [p for p in sys.path if p and os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages")]
    return sorted({_real(d) for d in dirs if os.path.isdir(d)})


def _checkout_root(pkg_dir: str) -> str | None:
    """The project checkout holding an (editable) grader/reference package, if it is one."""
    parent = os.path.dirname(pkg_dir)
    if any(os.path.exists(os.path.join(parent, marker)) for marker in ("pyproject.toml", ".git", "setup.py")):
        return parent
    return None


def _loaded_libraries(import_path: list[str]) -> list[str]:
    """Shared objects a homework's imports map, by importing them in a fresh interpreter."""
    code = ("import sys\nsys.path.extend(sys.argv[1:])\n"
            f"for m in {_PROBE_IMPORTS!r}:\n"
            "    try:\n        __import__(m)\n    except ImportError:\n        pass\n"
            "print(open('/proc/self/maps').read())\n")
    proc = subprocess.run([_real(sys.executable), "-I", "-S", "-c", code, *import_path],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"importing numpy/scipy/cvxopt failed: {proc.stderr.strip()[-300:]}")
    libs = set()
    for line in proc.stdout.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in os.path.basename(parts[5]):
            libs.add(parts[5].strip())
    return sorted(libs)


def _has_private_libraries() -> bool:
    """Does the prefix ship shared libraries of its own besides libpython (conda, a custom build)?

    Only then is the (slow, ~1 s) library probe worth running: wheels bundle theirs in
    ``<package>.libs``, and system packages use /usr.
    """
    for prefix in {sys.prefix, sys.base_prefix}:
        libdir = os.path.join(prefix, "lib")
        try:
            names = os.listdir(libdir)
        except OSError:
            continue
        if any(".so" in n and not n.startswith("libpython") for n in names):
            return True
    return False


@functools.lru_cache(maxsize=1)
def python_view() -> PythonView:
    """The view of this grader's Python (computed once per process)."""
    exe = _real(sys.executable)
    files = [exe]
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, ldlib = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
        if libdir and ldlib and os.path.exists(os.path.join(libdir, ldlib)):
            files.append(_real(os.path.join(libdir, ldlib)))
    stdlib = sorted({_real(sysconfig.get_path(k)) for k in ("stdlib", "platstdlib") if sysconfig.get_path(k)})
    stdlib = [d for d in stdlib if os.path.isdir(d)]
    sites = _site_dirs()
    packages, import_path = [], []
    for name in NEEDED_PACKAGES:
        for pkg in _package_dirs(name):
            packages.append(pkg)
            bundled = pkg + ".libs"
            if os.path.isdir(bundled):
                packages.append(bundled)
            if os.path.dirname(pkg) not in import_path:
                import_path.append(os.path.dirname(pkg))
    covered = [*SYSTEM_DIRS, *stdlib]
    empty = [s for s in sites if any(_inside(s, c) for c in covered if os.path.exists(c))]
    # packages inside a covered (hence emptied) site dir, or outside everything: bind them
    dirs = list(stdlib) + [p for p in packages if not any(_inside(p, d) for d in stdlib + list(SYSTEM_DIRS))
                           or any(_inside(p, e) for e in empty)]
    # the grader, the reference and their checkout, wherever something bound would show them
    bound = [*SYSTEM_DIRS, *dirs]
    for name in HIDDEN_PACKAGES:
        for pkg in _package_dirs(name):
            for hide in filter(None, (pkg, _checkout_root(pkg))):
                if any(_inside(hide, b) for b in bound) and not any(_inside(hide, e) for e in empty):
                    empty.append(hide)
    # libraries the packages load from elsewhere (conda's prefix/lib, ...): file binds + sonames
    symlinks = []
    everything = [*SYSTEM_DIRS, *dirs, *files]
    for lib in (_loaded_libraries(import_path) if _has_private_libraries() else []):
        if any(_inside(lib, b) for b in everything) or _under_system(lib):
            continue
        files.append(lib)
        folder = os.path.dirname(lib)
        for entry in os.scandir(folder):
            if entry.is_symlink() and _real(entry.path) == lib:
                symlinks.append((os.readlink(entry.path), entry.path))
    dirs = [d for d in dict.fromkeys(dirs) if not _under_system(d) or any(_inside(d, e) for e in empty)]
    files = [f for f in dict.fromkeys(files) if not _under_system(f)]
    return PythonView(executable=exe, bind_files=tuple(files), bind_dirs=tuple(dirs),
                      empty_dirs=tuple(sorted(set(empty))), symlinks=tuple(symlinks),
                      import_path=tuple(import_path))


def ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (folders to create before mounting ``path``)."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def readable_by_others(path: str) -> bool:
    """True if an unprivileged uid can reach ``path`` (every folder on the way o+x) and read it."""
    import stat

    p = Path(_real(path))
    try:
        for anc in [*reversed(p.parents), p]:
            st = os.stat(anc)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
                return False
        return bool(os.stat(p).st_mode & stat.S_IROTH)
    except OSError:
        return False
