"""The untrusted side: runs student code inside the sandbox.

Started as ``python -I -S worker.py REQ_FD RES_FD [--rlimits AS_MB,CPU_S,NPROC,FSIZE_MB,NOFILE]
[--path DIR:DIR...]``: ``-S`` skips ``site`` and its ``.pth`` files (about 20 ms per worker), so
the site-packages directories come explicitly with ``--path``
with ``protocol.py`` next to it (imported as a top-level module: the
``grader`` package is *not* visible in the sandbox, and this file must never
import it). Frames come in on REQ_FD and go out on RES_FD; fd 1/2 are pipes
owned by the parent that capture whatever the student prints.

Nothing here is trusted by the parent: every reply is re-validated there.
The worker only tries hard not to *lose* a verdict (every BaseException from
student code is caught) and to report in plain words what went wrong.
"""

import os
import sys


def _apply_rlimits(spec):
    try:
        import resource
    except ImportError:  # Windows
        return
    as_mb, cpu, nproc, fsize_mb, nofile = (int(x) for x in spec.split(","))
    todo = [
        (resource.RLIMIT_CORE, 0, 0),
        (getattr(resource, "RLIMIT_AS", None), as_mb << 20, as_mb << 20),
        (resource.RLIMIT_CPU, cpu, cpu + 1),   # soft -> SIGXCPU, hard -> SIGKILL
        (getattr(resource, "RLIMIT_NPROC", None), nproc, nproc),
        (resource.RLIMIT_FSIZE, fsize_mb << 20, fsize_mb << 20),
        (resource.RLIMIT_NOFILE, nofile, nofile),
    ]
    for res, soft, hard in todo:
        if res is None or soft < 0:
            continue
        try:
            cur_soft, cur_hard = resource.getrlimit(res)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass


def _parse_argv(argv):
    req, res = int(argv[1]), int(argv[2])
    rl = None
    if "--rlimits" in argv:
        rl = argv[argv.index("--rlimits") + 1]
    paths = argv[argv.index("--path") + 1].split(os.pathsep) if "--path" in argv else []
    return req, res, rl, paths


if __name__ == "__main__":
    _REQ_FD, _RES_FD, _RL, _PATHS = _parse_argv(sys.argv)
    if _RL:
        _apply_rlimits(_RL)
    sys.path.extend(p for p in _PATHS if p not in sys.path)

import linecache  # noqa: E402
import signal  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I drops the script dir
import protocol  # noqa: E402  (top-level module, shipped next to this file)

# Private references taken before any student code runs, so a submission that
# monkeypatches numpy/builtins cannot change how its own results are encoded.
_asarray = np.asarray
_array = np.array
_BaseException = BaseException
_isinstance = isinstance
_len = len
_MAX_OUT_ELEMENTS = protocol.MAX_ELEMENTS
_MAX_ANSWER = 20_000
_MAX_MSG = 500
_MAX_TB = 20_000
_write_frame = protocol.write_frame
_read_frame = protocol.read_frame
_setitimer = signal.setitimer
_signal = signal.signal


def _cpu_limit(seconds):
    """Kill this process (SIGPROF, default action) once a call has used ``seconds`` of CPU time.

    ITIMER_PROF counts this process's CPU time, not the wall clock, so a loaded machine does not
    make slow-but-correct code time out. Code that disarms it only waits for the parent's
    wall-clock limit instead.
    """
    _signal(signal.SIGPROF, signal.SIG_DFL)
    _setitimer(signal.ITIMER_PROF, seconds)


class _SourceFinder:
    """Serves the submission's own modules from the sources the parent sent (nothing on disk):
    ``pkg/util.py`` is ``pkg.util``, a folder without ``__init__.py`` a namespace package. First
    on ``sys.meta_path``, as a script's folder is first on ``sys.path``."""

    current = None

    def __init__(self, units, worker):
        self.units = {u["module"]: u for u in units}
        self.packages = set()
        for name, u in self.units.items():
            parts = name.split(".")
            self.packages.update(".".join(parts[:i]) for i in range(1, len(parts)))
            if u.get("package"):
                self.packages.add(name)
        self.worker = worker

    @classmethod
    def install(cls, units, worker):
        import importlib.util  # noqa: F401  (spec_from_loader)

        finder = cls(units, worker)
        for name in list(finder.units) + list(finder.packages):
            if name in ("protocol", "worker", "forkserver"):  # ours, imported before: the student's wins
                sys.modules.pop(name, None)
        sys.meta_path.insert(0, finder)
        cls.current = finder

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.units and fullname not in self.packages:
            return None
        import importlib.util

        unit = self.units.get(fullname)
        origin = str(unit.get("filename")) if unit else None
        spec = importlib.util.spec_from_loader(fullname, self, origin=origin,
                                               is_package=fullname in self.packages)
        if origin:
            spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        unit = self.units.get(module.__name__)
        if unit is not None:
            self.exec_into(unit, module)

    def exec_into(self, unit, module):
        filename = str(unit.get("filename", "module.py"))
        source = str(unit.get("source", ""))
        self.worker.student_files.add(filename)
        linecache.cache[filename] = (_len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)


class _Worker:
    def __init__(self, req_fd, res_fd):
        self.req = os.fdopen(req_fd, "rb", buffering=1 << 16)
        self.res_fd = res_fd
        self.module = None
        self.student_files = set()
        self.stdout = sys.stdout
        self.stderr = sys.stderr

    # -- helpers ----------------------------------------------------------
    def _flush(self):
        for s in (sys.stdout, sys.stderr, self.stdout, self.stderr):
            try:
                s.flush()
            except _BaseException:
                pass

    def _send(self, header, payload=b""):
        self._flush()
        _write_frame(self.res_fd, header, payload)

    def _one_line(self, exc):
        try:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
            line = text[-1] if text else type(exc).__name__
            if isinstance(exc, SyntaxError) and exc.lineno:
                line += f" (line {exc.lineno})"
        except _BaseException:
            line = type(exc).__name__
        return line[:_MAX_MSG]

    def _traceback(self, exc):
        """Traceback starting at the first frame in the student's code."""
        try:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename not in self.student_files:
                tb = tb.tb_next
            text = "".join(traceback.format_exception(type(exc), exc, tb))
        except _BaseException:
            text = self._one_line(exc)
        if _len(text) > _MAX_TB:
            text = text[: _MAX_TB // 2] + "\n...\n" + text[-_MAX_TB // 2:]
        return text

    # -- ops --------------------------------------------------------------
    def op_load(self, header):
        mod = types.ModuleType("submission")
        mod.__file__ = "submission.py"
        sys.modules["submission"] = mod
        self.module = mod
        failures = []
        units = [u for u in header.get("units", []) if _isinstance(u, dict)]
        modules = [u for u in units if _isinstance(u.get("module"), str) and u.get("module")]
        if modules:
            # Several files: each is a module the others (and the notebook) import by name.
            _SourceFinder.install(modules, self)
        module_ids = {id(u) for u in modules}
        for unit in units:
            if id(unit) in module_ids:
                continue
            cell = unit.get("cell", 0)
            filename = str(unit.get("filename", "submission.py"))
            source = str(unit.get("source", ""))
            self.student_files.add(filename)
            linecache.cache[filename] = (_len(source), None, source.splitlines(True), filename)
            try:
                code = compile(source, filename, "exec", dont_inherit=True)
                exec(code, mod.__dict__)
            except _BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt too
                failures.append({"cell": cell, "summary": self._one_line(exc),
                                 "traceback": self._traceback(exc)})
            self._flush()
        for unit in modules:
            self._import_module(unit, mod, failures)
        ns = mod.__dict__
        functions, answers = [], {}
        for name in list(ns.keys()):
            try:
                if _isinstance(name, str) and not name.startswith("__") and callable(ns[name]) \
                        and not _isinstance(ns[name], type):
                    functions.append(name)
            except _BaseException:
                pass
        for name in header.get("answers", []):
            v = ns.get(name)
            if _isinstance(v, str):
                answers[name] = str.__str__(v)[:_MAX_ANSWER]
        # the reply header must stay under protocol.MAX_HEADER, whatever the submission did
        functions = functions[:2000]
        budget = 600_000 // max(1, _len(failures))
        for f in failures[200:]:
            f["traceback"] = ""
        for f in failures:
            if _len(f["traceback"]) > budget:
                f["traceback"] = f["traceback"][: budget // 2] + "\n...\n" + f["traceback"][-budget // 2:]
        self._send({"ok": True, "cell_failures": failures, "functions": functions, "answers": answers})

    def _import_module(self, unit, mod, failures):
        """Import one of the submission's modules; its names join the submission's namespace
        (a name already there, from the notebook or an earlier module, is kept)."""
        import importlib

        name = unit["module"]
        try:
            if name == "submission":  # the student's own submission.py is the namespace itself
                _SourceFinder.current.exec_into(unit, mod)
                module = mod
            elif name in sys.modules and not _isinstance(getattr(sys.modules[name], "__loader__", None),
                                                         _SourceFinder):
                # random.py, numpy.py: the real module was imported before any student code and
                # stays; the student's file still runs, as a module of its own, for its names
                module = types.ModuleType(name)
                _SourceFinder.current.exec_into(unit, module)
            else:
                module = importlib.import_module(name)
        except _BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt too
            failures.append({"cell": 0, "summary": self._one_line(exc), "traceback": self._traceback(exc)})
            self._flush()
            return
        self._flush()
        if module is mod:
            return
        for key, value in list(module.__dict__.items()):
            if _isinstance(key, str) and not key.startswith("__"):
                mod.__dict__.setdefault(key, value)

    def _describe(self, obj):
        t = type(obj)
        return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"

    def _convert(self, obj, label):
        """Student value -> plain <f8 ndarray, or a one-line reason it is rejected."""
        if obj is None:
            return None, f"{label} is None (did the function forget to return?)"
        if _isinstance(obj, (str, bytes, bytearray)):
            return None, f"{label} is a {type(obj).__name__}, not a number or array"
        if _isinstance(obj, dict):
            return None, f"{label} is a dict, not a number or array"
        try:
            arr = _asarray(obj)
        except MemoryError:
            raise
        except _BaseException as exc:
            msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            if "inhomogeneous" in msg or "sequence" in msg:
                return None, f"{label} is a ragged nested list (rows of different lengths), not an array"
            return None, f"{label} could not be converted to an array: {msg}"
        kind = arr.dtype.kind
        if kind == "c":
            return None, f"{label} has complex values; a real number or array is expected"
        if kind in "USa":
            return None, f"{label} contains strings, not numbers"
        if kind not in "biuf":
            return None, f"{label} is a {self._describe(obj)} (dtype {arr.dtype}), not a number or array"
        if arr.size > _MAX_OUT_ELEMENTS:
            return None, f"{label} has {arr.size:,} elements, more than the limit {_MAX_OUT_ELEMENTS:,}"
        try:
            out = _array(arr, dtype="<f8", copy=True, subok=False, order="C")
        except MemoryError:
            raise
        except _BaseException as exc:
            return None, f"{label} could not be converted to float: {self._one_line(exc)}"
        return out, None

    def op_call(self, header, payload):
        cid = header.get("id")
        fname = header.get("function")

        def fail(kind, message, tb=None):
            self._send({"ok": False, "id": cid, "kind": kind, "message": message[:_MAX_MSG], "traceback": tb})

        try:
            args = protocol.decode_values(header.get("args", []), payload[: self._arg_bytes(header)],
                                          max_elements=protocol.MAX_ELEMENTS)
            kw_names = list(header.get("kwargs", {}).keys())
            kw_vals = protocol.decode_values([header["kwargs"][k] for k in kw_names],
                                             payload[self._arg_bytes(header):],
                                             max_elements=protocol.MAX_ELEMENTS)
        except protocol.ProtocolError as exc:
            return fail("crash", f"bad call request: {exc}")
        except MemoryError:
            return fail("memory", "ran out of memory while receiving the inputs")
        kwargs = dict(zip(kw_names, kw_vals))
        arg_names = list(header.get("arg_names", []))
        n_out = int(header.get("n_outputs", 1))
        out_names = header.get("output_names") or [f"{i + 1}" for i in range(n_out)]
        fn = self.module.__dict__.get(fname) if self.module is not None else None
        if fn is None or not callable(fn):
            return fail("missing", f"the submission does not define {fname}()")
        # private copies, to detect in-place modification of the inputs
        watched = []
        for i, a in enumerate(args):
            if _isinstance(a, np.ndarray):
                name = arg_names[i] if i < _len(arg_names) else f"argument {i + 1}"
                watched.append((name, a, a.copy()))
        for k, a in kwargs.items():
            if _isinstance(a, np.ndarray):
                watched.append((k, a, a.copy()))
        cpu_seconds = header.get("cpu_seconds")
        try:
            try:
                if _isinstance(cpu_seconds, (int, float)) and cpu_seconds > 0:
                    _cpu_limit(float(cpu_seconds))
                result = fn(*args, **kwargs)
                # convert immediately at return: later mutation cannot change it
                outputs, reason = self._outputs(result, n_out, out_names)
            finally:
                _setitimer(signal.ITIMER_PROF, 0)
                self._flush()
        except MemoryError as exc:
            return fail("memory", "ran out of memory", self._traceback(exc))
        except RecursionError as exc:
            return fail("exception", self._one_line(exc), self._traceback(exc))
        except _BaseException as exc:  # noqa: BLE001 -- SystemExit, KeyboardInterrupt are verdicts too
            return fail("exception", self._one_line(exc), self._traceback(exc))
        if reason is not None:
            return fail("rejected", reason)
        mutated = []
        for name, a, orig in watched:
            try:
                if a.shape != orig.shape or a.dtype != orig.dtype or a.tobytes() != orig.tobytes():
                    mutated.append(name)
            except _BaseException:
                mutated.append(name)
        payload = b"".join(o.tobytes() for o in outputs)
        self._send({"ok": True, "id": cid, "outputs": [{"shape": list(o.shape)} for o in outputs],
                    "mutated": mutated}, payload)

    @staticmethod
    def _arg_bytes(header):
        n = 0
        for d in header.get("args", []):
            if _isinstance(d, dict) and d.get("kind") == "array":
                k = 8
                for s in d.get("shape", []):
                    k *= int(s)
                n += k
        return n

    def _outputs(self, result, n_out, names):
        def label(i):
            return f"output '{names[i]}'" if i < _len(names) and not names[i].isdigit() else f"output {i + 1}"

        if n_out == 1:
            items = [result]
        else:
            expected = ", ".join(names) if _len(names) == n_out else ""
            expected = f" ({expected})" if expected and not names[0].isdigit() else ""
            if not _isinstance(result, (tuple, list)):
                return None, (f"returned a single {self._describe(result)}, "
                              f"expected {n_out} values{expected}")
            if _len(result) != n_out:
                return None, f"returned {_len(result)} values, expected {n_out}{expected}"
            items = list(result)
        outs = []
        for i, obj in enumerate(items):
            arr, reason = self._convert(obj, label(i))
            if reason is not None:
                return None, reason
            outs.append(arr)
        return outs, None

    def serve(self):
        while True:
            try:
                header, payload = _read_frame(self.req, max_header=protocol.MAX_REQUEST_HEADER)
            except EOFError:
                return 0
            op = header.get("op")
            if op == "load":
                self.op_load(header)
            elif op == "call":
                self.op_call(header, payload)
            elif op == "ping":
                self._send({"ok": True, "pong": True})
            elif op == "exit":
                self._send({"ok": True, "bye": True})
                return 0
            else:
                self._send({"ok": False, "kind": "crash", "message": f"unknown op {op!r}"})


def main():
    w = _Worker(_REQ_FD, _RES_FD)
    w._send({"ok": True, "ready": True})  # numpy imported, rlimits set; no student code has run
    code = w.serve()
    w._flush()
    os._exit(code)  # skip interpreter teardown: student atexit hooks/threads do not get a say


if __name__ == "__main__":
    main()
