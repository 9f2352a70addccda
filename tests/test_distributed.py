"""Grading on a Dask cluster: ``hwgrader grade --scheduler ...`` against real clusters.

The cluster tests start a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1
(free ports, stopped at the end), grade through the CLI as an instructor would, and compare
every student's results with a local run's; one kills a worker in the middle of a batch, one has a
submission that kills every worker that grades it. ``--scheduler local:2`` starts Dask's own
``LocalCluster``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

distributed = pytest.importorskip("distributed")

from grader.distributed.cluster import is_loopback, insecure_warning, parse_scheduler  # noqa: E402
from grader.distributed.executor import MAX_CHUNK, chunk_size  # noqa: E402
from grader.errors import UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "submissions"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}


# ----------------------------------------------------------------------------- helpers

def hwgrader(*args, timeout=900, env: Optional[dict] = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskCluster:
    """``dask scheduler`` + N ``dask worker`` processes on loopback, each in its own process group."""

    def __init__(self, tmp: Path, workers: int = 2, worker_env: Optional[list[dict]] = None,
                 tls: Optional["TlsFiles"] = None):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.tls = tls
        self.address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{self.port}"
        # a chunk whose workers keep dying is given up after 2 deaths (default 4): the test is faster
        env = {**ENV, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
        flags = tls.flags() if tls else []
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                   "--no-dashboard", *(["--protocol", "tls"] if tls else []),
                                                   *flags], env)
        self.workers = [self._start(f"worker-{i}", ["worker", self.address, "--nthreads", "1", "--host",
                                                    "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                                                    "--local-directory", str(tmp / f"w{i}"), *flags],
                                    {**env, **((worker_env or [])[i] if i < len(worker_env or []) else {})})
                        for i in range(workers)]
        try:
            with self.client() as client:
                client.wait_for_workers(workers, timeout=180)
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=self.tmp, start_new_session=True)

    def client(self):
        security = self.tls.security() if self.tls else None
        return distributed.Client(self.address, timeout="60s", set_as_default=False, security=security)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a process group: a worker machine going away, with its nanny and fork servers."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.workers + [self.scheduler]:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(proc)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.tmp.glob("*.log")))


class TlsFiles:
    """A certificate authority and one certificate for 127.0.0.1 signed by it (openssl), as a
    department would make for its cluster: scheduler, workers and hwgrader all present it."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
        ca_key = folder / "ca-key.pem"

        def openssl(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=hwgrader test CA",
                "-keyout", str(ca_key), "-out", str(self.ca))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(self.key),
                "-out", str(folder / "cert.csr"))
        (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", str(folder / "cert.csr"), "-CA", str(self.ca), "-CAkey", str(ca_key),
                "-CAcreateserial", "-days", "2", "-extfile", str(folder / "san.cnf"), "-out", str(self.cert))

    def flags(self) -> list[str]:
        return ["--tls-ca-file", str(self.ca), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]

    def env(self) -> dict:
        """Dask's configuration for a client (hwgrader), as README's TLS set-up writes it."""
        return {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.ca),
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.cert),
                "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.key),
                "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}

    def security(self):
        return distributed.Security(tls_ca_file=str(self.ca), tls_client_cert=str(self.cert),
                                    tls_client_key=str(self.key), require_encryption=True)


@pytest.fixture
def cluster(tmp_path):
    c = DaskCluster(tmp_path / "cluster")
    yield c
    c.stop()


def _grades(out: Path) -> dict[str, list[str]]:
    with (out / "grades.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    students = [r[0] for r in rows[1:]]
    assert len(students) == len(set(students)), "a student appears twice in grades.csv"
    return {r[0]: r[1:] for r in rows[1:]}


def _results(out: Path, student: str) -> dict:
    data = json.loads((out / student / "results.json").read_text(encoding="utf-8"))
    data.pop("execution_time", None)  # the only field that depends on where and when it ran
    return data


def _copy_batch(folder: Path, names: list[str], copies: int = 1) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    students = []
    for k in range(copies):
        for name in names:
            target = folder / (name if k == 0 else f"copy{k}_{name}")
            shutil.copy(SUBMISSIONS / name, target)
            students.append(target.stem)
    return students


SMALL = ["correct_module.py", "mistake_q1_dgamma_dbeta_swapped.py", "mistake_q4_unscaled.py", "syntax_error.py",
         "crash_at_import.py", "wrong_shapes_and_types.py", "colab_notebook.ipynb", "hangs_in_one_function.py"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The example folder graded on this machine (--jobs 2): what every Dask run must equal."""
    out = tmp_path_factory.mktemp("local") / "out"
    proc = hwgrader("grade", SUBMISSIONS, "--out", out, "--jobs", 2)
    assert proc.returncode == 0, proc.stderr
    return out


def _assert_same_as_local(out: Path, local: Path, students) -> None:
    local_grades, grades = _grades(local), _grades(out)
    for student in students:
        assert grades[student] == local_grades[student], student
        assert _results(out, student) == _results(local, student), student
        assert (out / student / "report.html").is_file()


# ----------------------------------------------------------------------------- no cluster needed

@pytest.mark.parametrize("text, protocol, host, port, workers", [
    ("local", "local", None, None, None),
    ("local:3", "local", None, None, 3),
    ("tcp://127.0.0.1:8786", "tcp", "127.0.0.1", 8786, None),
    ("tls://grader.example.edu:8786", "tls", "grader.example.edu", 8786, None),
    ("tcp://[::1]:9000", "tcp", "::1", 9000, None),
])
def test_scheduler_addresses_are_parsed(text, protocol, host, port, workers):
    address = parse_scheduler(text)
    assert (address.protocol, address.host, address.port, address.workers) == (protocol, host, port, workers)


@pytest.mark.parametrize("text", ["local:0", "localhost:8786", "tcp://host", "http://h:1", "tcp://h:99999", ""])
def test_bad_scheduler_addresses_are_usage_errors(text):
    with pytest.raises(UsageError, match="expected tcp://HOST:PORT, tls://HOST:PORT, local or local:N|at least 1"):
        parse_scheduler(text)


def test_plain_tcp_to_another_machine_warns_and_points_to_tls():
    warning = insecure_warning(parse_scheduler("tcp://10.20.30.40:8786"))
    assert warning and "unencrypted" in warning and "run code on the workers" in warning
    assert "tls://10.20.30.40:8786" in warning
    for quiet in ("tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786", "tls://10.20.30.40:8786",
                  "local:2"):
        assert insecure_warning(parse_scheduler(quiet)) is None, quiet
    assert is_loopback("127.0.0.5") and not is_loopback("192.168.1.1")


def test_tls_without_certificates_in_dask_config_is_one_line_naming_what_to_set():
    import dask

    from grader.distributed.cluster import missing_tls_settings

    with dask.config.set({"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None}):
        why = missing_tls_settings(parse_scheduler("tls://grader.example.edu:8786"))
        assert why.startswith("--scheduler tls://grader.example.edu:8786: tls:// needs the cluster's certificates")
        assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE and DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT are not set" in why
        assert "\n" not in why
        assert missing_tls_settings(parse_scheduler("tcp://127.0.0.1:8786")) is None
    with dask.config.set({"distributed.comm.tls.ca-file": "ca.pem", "distributed.comm.tls.client.cert": "c.pem"}):
        assert missing_tls_settings(parse_scheduler("tls://grader.example.edu:8786")) is None


def test_chunks_keep_tasks_few_and_balanced():
    assert chunk_size(1, 2) == 1
    assert chunk_size(42, 2) == 6                  # 7 chunks: several per slot
    assert chunk_size(1000, 2) == MAX_CHUNK        # 32 submissions a task: scheduling stays negligible
    assert chunk_size(100_000, 64) == MAX_CHUNK


def test_cli_rejects_a_bad_scheduler_in_one_line(tmp_path):
    proc = hwgrader("grade", SUBMISSIONS, "--out", tmp_path / "out", "--scheduler", "ftp://x:1", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hwgrader: error: --scheduler 'ftp://x:1': expected tcp://HOST:PORT, tls://HOST:PORT, local or local:N"]


def test_cli_names_an_unreachable_scheduler(tmp_path):
    env = {**ENV, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    port = _free_port()
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(SUBMISSIONS), "--out", str(tmp_path / "o"),
                           "--scheduler", f"tcp://127.0.0.1:{port}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hwgrader: error: --scheduler tcp://127.0.0.1:{port}: cannot reach the Dask scheduler")


def _fork_servers_of(pid: int) -> list[int]:
    """The fork servers (``inside/forkserver.py``, counted at the bwrap that runs each) below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                server = b"forkserver.py" in Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            (found if server else todo).append(child)
    return found


def test_the_worker_plugin_keeps_one_warm_fork_server_per_slot_and_stops_them():
    """What a Dask worker holds between tasks: its sandbox, warm, stopped at teardown."""
    import asyncio
    import types

    from isolation_levels import best

    from grader.assignment.plan import build_plan
    from grader.assignment.rubric import load_rubric
    from grader.assignment.submission import read_submission
    from grader.distributed.plugin import SandboxPlugin
    from grader.grading.executors import grade_guarded
    from grader.sandbox.levels import Isolation

    if best() is not Isolation.BWRAP_FORK:
        pytest.skip(f"fork servers need bwrap-fork (the best level here is {best()})")
    plan = build_plan(load_rubric(ROOT / "rubrics" / "homework.yaml"))
    plugin = SandboxPlugin("hwgrader-test", plan, None)
    worker = types.SimpleNamespace(state=types.SimpleNamespace(nthreads=2))
    asyncio.run(plugin.setup(worker))
    try:
        assert plugin.refusal is None and plugin.isolation == "bwrap-fork"
        servers = _fork_servers_of(os.getpid())
        assert len(servers) == 2, servers  # warm before the first task, one per slot
        result, error = grade_guarded(read_submission(SUBMISSIONS / "correct_module.py"), plan,
                                      sandbox=plugin.sandbox, slot=1)
        assert error is None and result.isolation == "bwrap-fork" and not result.load_error
        assert all(c.verdict == "passed" for q in result.questions for c in q.cases), result.score
        assert sorted(_fork_servers_of(os.getpid())) == sorted(servers)  # the task used them, no new ones
    finally:
        plugin.teardown(worker)
    assert plugin.sandbox is None and _fork_servers_of(os.getpid()) == []


# ----------------------------------------------------------------------------- real clusters

@pytest.mark.slow
def test_example_batch_on_a_real_cluster_equals_the_local_run(cluster, local_run, tmp_path):
    out = tmp_path / "out"
    proc = hwgrader("grade", SUBMISSIONS, "--out", out, "--scheduler", cluster.address)
    assert proc.returncode == 0, proc.stderr + cluster.logs()
    assert "grading on 2 Dask worker(s), 2 slot(s), isolation: " in proc.stderr
    assert "WARNING" not in proc.stderr  # loopback tcp:// is not warned about
    students = sorted(p.stem for p in SUBMISSIONS.iterdir() if p.suffix in (".py", ".ipynb"))
    assert sorted(_grades(out)) == students
    _assert_same_as_local(out, local_run, students)
    assert (out / "index.html").is_file()
    # the batch removed its set-up from the workers: their fork servers are gone, the cluster stays
    with cluster.client() as client:
        assert all(not [n for n in names if n.startswith("hwgrader-")]
                   for names in client.run(lambda dask_worker: list(dask_worker.plugins)).values())
        assert all(not servers for servers in client.run(lambda: _fork_servers_of(os.getpid())).values())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make the test certificates")
def test_a_tls_cluster_grades_like_the_local_run_and_refuses_a_client_without_certificates(local_run, tmp_path):
    tls = TlsFiles(tmp_path / "certs")
    cluster = DaskCluster(tmp_path / "cluster", tls=tls)
    try:
        students = _copy_batch(tmp_path / "subs", SMALL)
        out = tmp_path / "out"
        proc = hwgrader("grade", tmp_path / "subs", "--out", out, "--scheduler", cluster.address,
                        env={**ENV, **tls.env()})
        assert proc.returncode == 0, proc.stderr + cluster.logs()
        assert "unencrypted" not in proc.stderr and "WARNING" not in proc.stderr
        assert "grading on 2 Dask worker(s), 2 slot(s), isolation: " in proc.stderr
        _assert_same_as_local(out, local_run, students)
        # no certificate, no grading: one line naming the scheduler, exit 2, nothing graded
        refused = hwgrader("grade", tmp_path / "subs", "--out", tmp_path / "out2", "--scheduler", cluster.address)
    finally:
        cluster.stop()
    assert refused.returncode == 2, refused.stderr
    assert f"--scheduler {cluster.address}: " in refused.stderr
    assert not list((tmp_path / "out2").glob("*/results.json"))


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nobody_and_doubles_nobody(cluster, tmp_path):
    names = ["correct_module.py", "mistake_q1_dgamma_dbeta_swapped.py", "syntax_error.py",
             "mistake_q5_conv_flipped_kernel.py", "wrong_shapes_and_types.py", "colab_notebook.ipynb"]
    students = _copy_batch(tmp_path / "subs", names, copies=12)   # 72 submissions, 12 chunks of 6
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "grader", "grade", str(tmp_path / "subs"), "--out", str(out),
                            "--scheduler", cluster.address], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(list(out.glob("*/results.json"))) < 8:  # both workers are busy with chunks by now
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.1)
    graded_at_kill = len(list(out.glob("*/results.json")))
    cluster.kill(cluster.workers[0])
    stdout, stderr = run.communicate(timeout=900)
    assert graded_at_kill < len(students) - 12, "the batch was nearly over when the worker died"
    assert run.returncode == 0, stderr + cluster.logs()
    grades = _grades(out)
    assert sorted(grades) == sorted(students)                    # nobody lost, nobody doubled
    for student in students:                                      # each copy graded like its original
        original = student.split("_", 1)[1] if student.startswith("copy") else student
        assert grades[student] == grades[original], student
        assert _results(out, student)["tests"] == _results(out, original)["tests"], student


@pytest.mark.slow
def test_a_submission_that_keeps_killing_workers_is_isolated_as_an_infrastructure_failure(cluster, tmp_path):
    from dask_poison import KillWorkerOnStudent

    students = _copy_batch(tmp_path / "subs", ["correct_module.py", "mistake_q4_unscaled.py", "syntax_error.py",
                                               "wrong_shapes_and_types.py"], copies=2)
    with cluster.client() as client:
        client.register_plugin(KillWorkerOnStudent("copy1_mistake_q4_unscaled"))
        try:
            out = tmp_path / "out"
            proc = hwgrader("grade", tmp_path / "subs", "--out", out, "--scheduler", cluster.address)
        finally:
            client.unregister_worker_plugin(KillWorkerOnStudent.name)
    assert proc.returncode == 3, proc.stderr + cluster.logs()
    assert "1 submission(s) kept killing the Dask workers" in proc.stderr
    assert "grading failed for copy1_mistake_q4_unscaled.py: every Dask worker that ran it died" in proc.stderr
    grades = _grades(out)
    assert sorted(grades) == sorted(students)
    poisoned = _results(out, "copy1_mistake_q4_unscaled")
    assert "hwgrader could not grade this submission (not the student's fault" in poisoned["output"]
    assert grades["copy1_mistake_q4_unscaled"] == ["", "", "", "", "", "", ""]  # not graded, not a zero
    for student in students:
        if student != "copy1_mistake_q4_unscaled":
            original = student.split("_", 1)[1] if student.startswith("copy") else student
            assert grades[student] == grades[original], student


@pytest.mark.slow
def test_embedded_local_cluster_equals_the_local_run(local_run, tmp_path):
    students = _copy_batch(tmp_path / "subs", SMALL)
    out = tmp_path / "out"
    proc = hwgrader("grade", tmp_path / "subs", "--out", out, "--scheduler", "local:2")
    assert proc.returncode == 0, proc.stderr
    assert "(--scheduler local:2, isolation: " in proc.stdout
    assert sorted(_grades(out)) == sorted(students)
    _assert_same_as_local(out, local_run, students)


@pytest.mark.slow
def test_a_worker_that_cannot_sandbox_is_reported_and_not_used(local_run, tmp_path):
    # worker w1 finds neither bwrap nor unshare (empty PATH): it must refuse, never grade unsandboxed
    cluster = DaskCluster(tmp_path / "cluster", worker_env=[{}, {"PATH": "/nonexistent"}])
    try:
        students = _copy_batch(tmp_path / "subs", SMALL, copies=2)
        out = tmp_path / "out"
        proc = hwgrader("grade", tmp_path / "subs", "--out", out, "--scheduler", cluster.address)
        with cluster.client() as client:
            names = {info["name"]: addr for addr, info in client.scheduler_info(n_workers=-1)["workers"].items()}
    finally:
        cluster.stop()
    assert proc.returncode == 0, proc.stderr + cluster.logs()
    assert (f"hwgrader: WARNING: Dask worker {names['w1']} is not used: no sandbox works on this worker"
            in proc.stderr)
    assert "grading on 1 Dask worker(s), 1 slot(s), isolation: " in proc.stderr
    assert sorted(_grades(out)) == sorted(students)
    _assert_same_as_local(out, local_run, [s for s in students if not s.startswith("copy")])
    for student in students:
        assert _results(out, student)["extra_data"]["isolation"] != "process", student
