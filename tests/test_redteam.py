"""Red-team suite: hostile submissions (tests/attacks/*.py) graded by the real engine, CMS style.

Each attack returns the right answer only if its trick worked (reading the reference, lying to
the comparison, ...), so a breach shows up as points. All attacks and two honest controls are
graded in ONE batch (``grader.grading.batch.grade_all``, jobs=2) per isolation level, then we check:

* the attacked cases score 0 (or exactly what honest code scores, for the one advisory check),
* the verdict is the expected one,
* no sentinel file appeared on the host (after waiting for delayed daemons),
* nothing connected to a loopback listener the test runs,
* no process is left behind (attack marker in a cmdline, or the worker uids of this grader),
* each control scores exactly what it scores when graded alone.

Under "process" isolation (no namespaces) reading the host and the network cannot be stopped:
those breaches are expected and reported with ``pytest.xfail`` once every other check passed.
Attacks that would hurt the test machine when the plain-process worker runs as root (kill(-1),
fork bombs, writing into the project tree) are not run there.

    HWGRADER_REQUIRE_BWRAP=1 python -m pytest -n 2 tests/test_redteam.py
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from grader.sandbox import launch as sandbox
from grader.grading.batch import grade_all
from grader.outputs.writers import WriterChain, default_writers
from grader.grading.engine import grade_submission
from grader.assignment.plan import build_plan
from grader.assignment.rubric import load_rubric
from hidden_leaks import leak_problems

pytestmark = pytest.mark.redteam

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ROOT / "tests" / "attacks"
CONTROLS = {"ctrl_correct": ROOT / "submissions" / "correct_module.py",
            "ctrl_mistake": ROOT / "submissions" / "mistake_q4_urn_columns_swapped.py"}

WRONG = {"wrong"}
RUNAWAY = {"timeout", "crash", "memory", "exception"}

# name -> (attacked function, allowed verdicts on its cases, category)
#   category: "host-read" / "host-write" / "net": stopped by namespaces only (expected breach under process)
#             "advisory": scores what honest code scores (the check runs in the untrusted worker)
#             "danger": not run under process isolation when the worker runs as root
#             "in-process": must hold at every level
F = "urn_emissions"
EXPECT: dict[str, tuple[str, set, str]] = {
    # reading the host
    "read_reference_abs": (F, WRONG, "host-read"),
    "import_reference": (F, WRONG, "host-read"),
    "walk_root": (F, WRONG | {"timeout"}, "host-read"),
    "proc1_cwd": (F, WRONG, "host-read"),
    "proc_ppid": (F, WRONG, "host-read"),
    "read_rubric": (F, WRONG, "host-read"),
    "copy_other_student": (F, WRONG, "host-read"),
    "env_argv": (F, WRONG, "host-read"),
    "ptrace_parent_mem": (F, WRONG | {"timeout"}, "host-read"),
    "ctypes_setuid": (F, WRONG, "in-process"),
    # worker memory
    "gc_expected": (F, WRONG, "in-process"),
    "inspect_stack": (F, WRONG | {"rejected", "shape"}, "in-process"),
    # lying to the comparison
    "monkeypatch_numpy": (F, WRONG, "in-process"),
    "ndarray_subclass": (F, WRONG, "in-process"),
    "lying_eq_object": (F, {"rejected", "timeout", "memory"}, "in-process"),  # self-nesting: asarray recurses 32 deep
    "array_function_override": (F, WRONG | {"rejected"}, "in-process"),
    "array_changes_per_call": (F, WRONG, "in-process"),
    "object_array": (F, {"rejected"}, "in-process"),
    "mutate_after_return": (F, WRONG, "in-process"),
    "nan_output": (F, {"nonfinite"}, "in-process"),
    "empty_output": (F, {"shape"}, "in-process"),
    "broadcast_row": (F, {"shape"}, "in-process"),
    "broadcast_column": (F, {"shape"}, "in-process"),
    "scalar_for_array": (F, {"shape"}, "in-process"),
    "reseed_rng": (F, WRONG, "in-process"),
    # inputs
    "mutate_inputs": ("baum_welch", {"mutated"}, "in-process"),
    # Under bwrap-fork the worker is not __main__, so this particular patch misses and the
    # mutation is caught ("mutated", 0); elsewhere it hides it and scores what honest code scores.
    "mutate_and_hide": ("baum_welch", {"passed", "mutated"}, "advisory"),
    # exits and fake output
    "sys_exit_import": (F, WRONG, "in-process"),
    "os_exit_import": (F, {"skipped"}, "in-process"),
    "os_exit_in_call": (F, {"crash"}, "in-process"),
    "sys_exit_in_call": (F, {"exception"}, "in-process"),
    "fake_stdout": (F, WRONG, "in-process"),
    "forge_frames_fds": (F, {"invalid_reply"} | WRONG, "in-process"),  # a forged frame is only its own (wrong) values
    # forged replies and the parent's memory: the student's verdict, never a failed batch
    "forge_deep_json": (F, {"invalid_reply"}, "in-process"),
    "forge_wrong_types": (F, {"invalid_reply"}, "in-process"),
    "forge_huge_shape": (F, {"invalid_reply"}, "in-process"),
    "at_cap_replies": (F, {"rejected", "timeout"}, "in-process"),  # timeout: 2 contended cores may not write 80 MB in 2 s
    # hidden means hidden: checked in the written reports by tests/hidden_leaks.py
    "hidden_print_echo": (F, WRONG, "in-process"),
    "hidden_exception_name": (F, {"exception"}, "in-process"),
    "hidden_exit_code": (F, {"crash"}, "in-process"),
    # writing outside
    "sentinel_tmp": (F, WRONG, "host-write"),
    "overwrite_reports": (F, WRONG, "host-write"),
    "write_grader_tree": (F, WRONG, "danger"),
    "big_file": (F, WRONG | {"crash"}, "danger"),  # under process the cwd is the grader's
    "daemon_sentinel": (F, WRONG, "host-write"),
    # network
    "tcp_exfiltrate": (F, WRONG, "net"),
    # resources
    "fork_bomb": (F, RUNAWAY, "danger"),
    "thread_bomb": (F, RUNAWAY, "in-process"),
    "memory_bomb": (F, {"memory", "crash", "timeout"}, "in-process"),  # timeout when 2 cores are contended
    "cpu_loop": (F, {"timeout"}, "in-process"),
    "sleep_forever": (F, {"timeout"}, "in-process"),
    "sigstop_self": (F, {"timeout"}, "in-process"),
    "kill_everything": (F, WRONG | {"crash", "timeout"}, "danger"),
    "huge_output": (F, RUNAWAY | {"rejected"}, "in-process"),
    "many_files": (F, WRONG, "in-process"),
}

LIMITS = dict(call_seconds=2, load_seconds=5, submission_seconds=6, memory_mb=512, cpu_seconds=4,
              processes=32, open_files=64, output_bytes=65536)


def test_every_attack_file_is_listed_and_documented():
    files = {p.stem for p in ATTACKS.glob("*.py")}
    assert files == set(EXPECT), (files ^ set(EXPECT))
    assert len(files) >= 30
    import ast
    for p in ATTACKS.glob("*.py"):
        assert ast.get_docstring(ast.parse(p.read_text())), f"{p.name} has no docstring"


def _levels():
    out = []
    require = os.environ.get("HWGRADER_REQUIRE_BWRAP") == "1"
    for iso in sandbox.ISOLATIONS:
        if iso == "process" or sandbox.detect_isolation(iso) == iso:
            out.append(pytest.param(iso))
        elif iso == "bwrap" and require:
            out.append(pytest.param(iso))  # fails in the test body: HWGRADER_REQUIRE_BWRAP=1
        else:
            out.append(pytest.param(iso, marks=pytest.mark.skip(
                reason=f"{iso} does not work here (best: {sandbox.detect_isolation()})")))
    return out


@pytest.fixture(scope="module")
def plan():
    p = build_plan(load_rubric(ROOT / "rubrics" / "homework.yaml"))
    return replace(p, limits=replace(p.limits, **LIMITS))


def _process_runs_as_root() -> bool:
    launch = sandbox.build_launch("process", sandbox.Limits(), 10, 11, 0)
    return os.geteuid() == 0 and launch.user is None


def _marker_pids(marker: str) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def _uid_pids(uids: set[int]) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) in uids:
                                pids.append(int(d))
                            break
            except (OSError, ValueError):
                pass
    return pids


def _case_summary(result, function):
    cases = [c for q in result.questions for c in q.cases if c.function == function]
    return cases, sum(c.score for c in cases), {c.verdict for c in cases}


@pytest.mark.parametrize("iso", _levels())
def test_redteam_batch(iso, plan, tmp_path):
    if iso == "bwrap" and sandbox.detect_isolation("bwrap") != "bwrap":
        pytest.fail("HWGRADER_REQUIRE_BWRAP=1 but bubblewrap does not work here")
    token = uuid.uuid4().hex[:12]
    marker = f"hwgmark{token}"
    sentinel_glob = [f"/tmp/hwgrader-pwned-{token}-*", f"/dev/shm/hwgrader-pwned-{token}-*",
                     f"/var/tmp/hwgrader-pwned-{token}-*"]
    out_dir = Path(tempfile.mkdtemp(prefix="hwgrader-redteam-out-"))
    os.chmod(out_dir, 0o755)  # a normal reports folder: reachable, not writable by the worker uid
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    as_root_process = iso == "process" and _process_runs_as_root()
    skipped = {n: "destructive when the plain-process worker runs as root"
               for n, (_, _, cat) in EXPECT.items() if as_root_process and cat == "danger"}

    src_dir = tmp_path / "subs"
    src_dir.mkdir()
    paths = []
    for name in EXPECT:
        if name in skipped:
            continue
        text = (ATTACKS / f"{name}.py").read_text()
        text = (text.replace("__SENTINEL__", f"/tmp/hwgrader-pwned-{token}-{name}")
                .replace("__PORT__", str(port)).replace("__OUTDIR__", str(out_dir))
                .replace("__MARKER__", marker))
        p = src_dir / f"{name}.py"
        p.write_text(text)
        paths.append(p)
    for name, src in CONTROLS.items():
        shutil.copyfile(src, src_dir / f"{name}.py")
        paths.append(src_dir / f"{name}.py")
    planted = [ROOT / "grader" / f"{marker}.py", ROOT / "reference" / f"{marker}.py", out_dir / f"{marker}-pwned"]

    alone = {name: grade_submission(src_dir / f"{name}.py", plan, isolation=iso) for name in CONTROLS}
    t0 = time.monotonic()
    try:
        writers = WriterChain(default_writers(out_dir, plan))
        results, internal = grade_all(paths, plan, jobs=2, isolation=iso, progress=None,
                                      on_result=writers.submission)
        writers.finish(results)
        batch_seconds = time.monotonic() - t0
        time.sleep(2.0)  # daemon_sentinel writes after 1.5 s
        connections = []
        while True:
            try:
                conn, _ = listener.accept()
                conn.settimeout(0.5)
                try:
                    connections.append(conn.recv(100))
                except OSError:
                    connections.append(b"?")
                conn.close()
            except (BlockingIOError, OSError):
                break
        sentinels = sorted(s for g in sentinel_glob for s in glob.glob(g))
        written = [str(p) for p in planted if p.exists()]
        leftovers = _marker_pids(marker)
        worker_uids = {sandbox.worker_uid(s) for s in range(2)}
        uid_left = _uid_pids(worker_uids) if os.geteuid() == 0 else []
    finally:
        listener.close()
        for p in planted:
            p.unlink(missing_ok=True)
        for g in sentinel_glob:
            for s in glob.glob(g):
                os.unlink(s)
        for pid in _marker_pids(marker):
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    assert internal == []
    by_name = {r.student: r for r in results}
    assert all(r.isolation == iso for r in results), {r.student: r.isolation for r in results}
    problems, expected_breaches, table = [], [], []

    honest_bw = _case_summary(alone["ctrl_correct"], "baum_welch")[1]
    for name, (function, verdicts, cat) in EXPECT.items():
        if name in skipped:
            table.append(f"{name:26s} skipped ({skipped[name]})")
            continue
        r = by_name[name]
        cases, score, got = _case_summary(r, function)
        others = sum(c.score for q in r.questions for c in q.cases if c.function != function)
        table.append(f"{name:26s} {'/'.join(sorted(got)):22s} {score:g}")
        want_score = honest_bw if cat == "advisory" and got == {"passed"} else 0.0
        breach_ok = iso == "process" and cat in ("host-read", "host-write", "net")
        if abs(score - want_score) > 1e-9 or others:
            (expected_breaches if breach_ok else problems).append(
                f"{name}: scored {score:g} on {function} (+{others:g} elsewhere), verdicts {got}")
        elif not got <= verdicts and not breach_ok:
            problems.append(f"{name}: verdicts {got}, expected within {verdicts}; "
                            f"messages {[c.message[:120] for c in cases]}")
        if len(r.output.encode("utf-8", "replace")) > plan.limits.output_bytes + 200:
            problems.append(f"{name}: kept {len(r.output)} characters of output")

    for what, found, cat in (("sentinel files", sentinels, "host-write"), ("planted files", written, "host-write"),
                             ("connections", connections, "net")):
        if found:
            (expected_breaches if iso == "process" else problems).append(f"{what}: {found}")
    if leftovers:
        (expected_breaches if as_root_process else problems).append(f"processes left behind: {leftovers}")
    if uid_left:
        problems.append(f"processes of the worker uids left behind: {uid_left}")

    # the reports folder still tells the truth
    import json
    for name in CONTROLS:
        on_disk = json.loads((out_dir / name / "results.json").read_text())
        if abs(on_disk["score"] - by_name[name].score) > 1e-9:
            problems.append(f"{name}: results.json says {on_disk['score']}, graded {by_name[name].score}")
        a = [(c.number, c.score, c.verdict) for q in alone[name].questions for c in q.cases]
        b = [(c.number, c.score, c.verdict) for q in by_name[name].questions for c in q.cases]
        if a != b:
            problems.append(f"{name}: graded alone {[x for x in a if x not in b]}, "
                            f"in the batch {[x for x in b if x not in a]}")
    problems += leak_problems(out_dir, plan, by_name)
    shutil.rmtree(out_dir, ignore_errors=True)

    report = "\n".join([f"isolation {iso}: batch of {len(paths)} in {batch_seconds:.1f} s"] + table)
    print(report)
    assert not problems, "\n".join(problems) + "\n\n" + report
    if expected_breaches:
        pytest.xfail(f"{iso} has no namespaces, expected breaches: " + "; ".join(expected_breaches))
