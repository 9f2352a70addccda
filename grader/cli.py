"""The command line: parse, call the library, print. Errors are caught once, here.

``hwgrader grade``, ``check``, ``reference`` and ``kit`` (see
``shared/spec/interfaces.md``). Every user-facing failure is a
``HwgraderError``: one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence


from grader import __version__
from grader.errors import ExitCode, HwgraderError, UsageError
from grader.safetext import visible

PACKAGE_DIR = Path(__file__).resolve().parent
#: The kit ships its public cases inside the package; a repository checkout has the rubric beside it.
KIT_CASES = PACKAGE_DIR / "public-cases.json"
DEFAULT_RUBRIC = PACKAGE_DIR.parent / "rubrics" / "homework.yaml"
#: --isolation values, strongest first (grader.sandbox.levels.Isolation; not imported here to
#: keep `hwgrader --help` fast)
ISOLATIONS = ("bwrap-fork", "bwrap", "unshare", "process")
ISOLATION_HELP = ("a requirement: grade under this level or exit 2 saying why it cannot run here "
                  "(default: the strongest sandboxed level that works; 'process' is unsandboxed and "
                  "must be asked for)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwgrader", description=(
        "Grade the deep-learning homework: student code runs sandboxed, "
        "answers are compared numerically with the references."))
    parser.add_argument("--version", action="version", version=f"hwgrader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    grade = commands.add_parser("grade", help="grade every submission in folders, files or zips")
    grade.add_argument("submissions", type=Path, nargs="+", metavar="SOURCE",
                       help="a folder (searched at any depth), a .py/.ipynb file or a .zip")
    grade.add_argument("--out", type=Path, default=Path("reports"), help="where reports go (default: reports)")
    grade.add_argument("--rubric", type=Path, help=f"rubric file (default: {DEFAULT_RUBRIC})")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default: 1)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on a Dask cluster: tcp://HOST:PORT or tls://HOST:PORT of a running "
                            "scheduler, or local / local:N for an embedded one (needs hwgrader[dask]; "
                            "--jobs is then the workers' threads)")
    grade.add_argument("--isolation", choices=ISOLATIONS, default=None, help=ISOLATION_HELP)

    check = commands.add_parser("check", help="self-check one submission on the public tests")
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument("--question", metavar="qN", help="check only this question (e.g. q3)")
    check.add_argument("--rubric", type=Path, help="rubric file (default: the kit's public cases)")
    check.add_argument("--report", type=Path, help="HTML report path (default: <student>-report.html)")
    check.add_argument("--isolation", choices=ISOLATIONS, default=None,
                       help="as for grade, but without it a machine with no sandbox runs the public tests "
                            "unsandboxed (and says so)")
    check.add_argument("--junit", type=Path, metavar="PATH", help="also write the public tests as JUnit XML")
    check.add_argument("--github", action="store_true",
                       help="GitHub Actions: step summary, one annotation per question, Classroom points line")

    reference = commands.add_parser("reference", help="print the reference answers to the lecture's instances")
    reference.add_argument("--rubric", type=Path)

    kit = commands.add_parser("kit", help="export the student kit (public tests only, no reference code)")
    kit.add_argument("out", type=Path, metavar="OUT")
    kit.add_argument("--rubric", type=Path)

    manual = commands.add_parser("manual", help="manual grades of the written answers as CSV")
    manual_commands = manual.add_subparsers(dest="manual_command", required=True, metavar="ACTION")
    manual_export = manual_commands.add_parser("export", help="write DIR's manual grades to FILE")
    manual_import = manual_commands.add_parser("import", help="check FILE, then apply its grades to DIR")
    for sub in (manual_export, manual_import):
        sub.add_argument("dir", type=Path, metavar="DIR", help="a folder graded with `grade --out DIR`")
        sub.add_argument("file", type=Path, metavar="FILE", help="CSV: student,question,points,comment")
    manual_import.add_argument("--grader", help="name recorded with the imported grades (default: your user name)")

    export = commands.add_parser("export", help="a grade file an LMS imports as it is")
    export.add_argument("dir", type=Path, metavar="DIR", help="a folder graded with `grade --out DIR`")
    export.add_argument("--format", required=True, choices=("canvas", "moodle"), dest="lms_format")
    export.add_argument("--out", type=Path, help="file to write (default: DIR/<format>-grades.csv)")
    export.add_argument("--roster", type=Path, help="CSV student,lms_id[,name,sis_user_id,sis_login_id,section,email] "
                                                   "for students whose LMS id the download did not carry")
    export.add_argument("--assignment", help="Canvas assignment column: 'Name (id)' updates assignment id, "
                                             "any other name creates one (default: the homework's title)")
    serve = commands.add_parser("serve", help="grade the written answers in a local web UI")
    serve.add_argument("dir", type=Path, metavar="DIR", help="the --out folder of `hwgrader grade`")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")

    audit = commands.add_parser("audit", help="which cases catch each known mistake; exit 1 if one is never caught")
    audit.add_argument("--rubric", type=Path, help=f"rubric file (default: {DEFAULT_RUBRIC})")

    mistakes = commands.add_parser("mistakes", help="print a @mistake skeleton for each shared wrong answer "
                                                    "no known mistake explains (from the last grade into DIR)")
    mistakes.add_argument("dir", type=Path, metavar="DIR")
    mistakes.add_argument("--rubric", type=Path, help=f"rubric file (default: {DEFAULT_RUBRIC})")

    bundle = commands.add_parser("bundle", help="build an autograder bundle (Gradescope)")
    bundle.add_argument("target", choices=["gradescope"], help="the platform the bundle is for")
    bundle.add_argument("out", type=Path, metavar="OUT.zip")
    bundle.add_argument("--rubric", type=Path, help=f"rubric file (default: {DEFAULT_RUBRIC})")
    bundle.add_argument("--deps", choices=["wheels", "pypi"], default="wheels",
                        help="dependencies as wheels inside the zip (default) or installed from PyPI by setup.sh")
    bundle.add_argument("--python-version", default="3.10", help="the image's Python, for --deps wheels (default: 3.10)")
    bundle.add_argument("--platform", default="manylinux_2_35_x86_64",
                        help="the image's wheel platform, for --deps wheels (default: manylinux_2_35_x86_64)")
    bundle.add_argument("--isolation", choices=("auto",) + ISOLATIONS, default="auto",
                        help="require this sandbox in the container (default: the strongest that works)")
    bundle.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="wall-clock limit for grading one submission (default: from the rubric's limits)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"grade": _grade, "check": _check, "reference": _reference, "kit": _kit,
                "manual": _manual, "export": _export, "serve": _serve, "audit": _audit, "mistakes": _mistakes,
                "bundle": _bundle}[args.command](args)
    except HwgraderError as exc:
        print(f"hwgrader: error: {visible(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hwgrader: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return ExitCode.OK


def _rubric_path(args) -> Path:
    path = args.rubric or DEFAULT_RUBRIC
    if not path.is_file():
        raise UsageError(f"rubric not found: {path} (pass --rubric FILE)")
    return path


def _choose_isolation(args, *, allow_process: bool, announce: bool = True):
    """Fail closed (``grader.sandbox.detect``); ``announce``: say now which level grades."""
    from grader.sandbox.detect import choose

    detection = choose(args.isolation, allow_process=allow_process)
    if announce:
        _announce_isolation(args, detection)
    return detection


def _announce_isolation(args, detection) -> None:
    """The level, printed before grading starts (and a loud warning when it is unsandboxed)."""
    print(f"hwgrader: {detection.describe()}", file=sys.stderr)
    if not detection.level.sandboxed:
        how = "as you asked (--isolation process)" if args.isolation else "because no sandbox works on this machine"
        print(f"hwgrader: WARNING: student code runs UNSANDBOXED {how}: it can read and write "
              "everything your user can (see docs/threat-model.md)", file=sys.stderr)


def _full_plan(args):
    from grader.assignment.plan import build_plan
    from grader.assignment.rubric import load_rubric

    return build_plan(load_rubric(_rubric_path(args)))


def _warn_isolation(isolation) -> None:
    from grader.sandbox.levels import FULL_ISOLATIONS

    if not all(level in FULL_ISOLATIONS for level in str(isolation).split("/")):  # a cluster: "bwrap/bwrap-fork"
        print(f"hwgrader: WARNING: submissions ran under '{isolation}' isolation, weaker than the "
              f"bubblewrap sandbox (install bubblewrap for full isolation; see docs/threat-model.md)",
              file=sys.stderr)


def _grade(args) -> int:
    from grader.assignment.intake import Status, discover
    from grader.grading.batch import BatchInterrupted, grade_all
    from grader.gradebook.incremental import GradebookWriter, plan_run, rubric_run_key
    from grader.gradebook.store import Gradebook
    from grader.outputs.intakecsv import write_intake_csv
    from grader.outputs.writers import ClusterFile, WriterChain
    from grader.sandbox.session import Sandbox
    from grader.outputs.terminal import print_class_table

    executor = _cluster_executor(args)  # --scheduler: grade on a Dask cluster, same outputs
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    _check_out_dir(args.out)
    _rubric_path(args)  # a usage error first: probing the sandbox takes a moment
    # fail closed first (on a Dask cluster every worker does it: grader.distributed.plugin)
    detection = None if executor else _choose_isolation(args, allow_process=False, announce=False)
    isolation = detection.level if detection else None
    started = time.monotonic()
    sandbox = None if executor else Sandbox(isolation, slots=args.jobs)
    with _closing_on_error(sandbox), ThreadPoolExecutor(max_workers=1) as background:
        # Warming the sandbox (fork servers) waits on processes; building the reference plan and
        # reading the submissions is Python work: overlap them.
        warmed = background.submit(sandbox.warm) if sandbox else None
        plan = _full_plan(args)
        intake = discover(args.submissions, homework={c.function for c in plan.cases}, skip=[args.out])
        _check_out_dir(args.out, create=True)
        if not intake.sources:
            write_intake_csv(intake, args.out / "intake.csv")
            raise UsageError(f"no submissions found in {_shown_sources(args.submissions)}: looked for .py and "
                             f".ipynb files (any case, at any depth, inside .zip files too); "
                             f"see {visible(str(args.out / 'intake.csv'))}")
        gradebook = Gradebook.open(args.out, create=True)  # a damaged or foreign file stops us here
        if warmed is not None:
            warmed.result()
    if detection is not None:
        _announce_isolation(args, detection)  # after the set-up's own errors, before grading starts
    try:
        # Incremental: unchanged submissions are reused from the gradebook, manual grades are kept.
        gradebook.sync_plan(plan)
        key = rubric_run_key(_rubric_path(args))
        run = plan_run(intake.sources, gradebook, key)
        reused = {r.student for r in run.reused}
        for entry in intake.entries:
            if entry.status is Status.GRADED and entry.student in reused:
                entry.status = Status.REUSED
        write_intake_csv(intake, args.out / "intake.csv")
        present = {s.student for s in intake.sources}
        if _single_files(args):  # one student's file into an existing --out: the others stay
            present |= {s.id for s in gradebook.students()}
        removed = gradebook.set_present(present)
        print(_intake_summary(intake, args.out))
        # Class analyses see every result (reused or graded) before the class files are written.
        writers = WriterChain([ClusterFile(args.out, plan), _similarity_writer(args.out, plan),
                               GradebookWriter(gradebook, args.out, run, key)])
        for stored in run.reused:
            writers.submission(stored)
        try:
            results, internal_errors = grade_all(run.to_grade, plan, jobs=args.jobs, sandbox=sandbox,
                                                 on_result=writers.submission, executor=executor)
            if executor:
                isolation = executor.isolation
        except BatchInterrupted as stop:
            writers.finish(stop.results)  # the class files, with every student graded so far
            print(f"hwgrader: interrupted: {len(stop.results)} of {len(run.to_grade)} student(s) graded "
                  f"(and {len(run.reused)} reused); class files written in {visible(str(args.out))}; "
                  f"run the command again to grade the rest", file=sys.stderr)
            if stop.in_progress:  # their sandboxes close with the batch (finally, below)
                print(f"hwgrader: stopping the {stop.in_progress} submission(s) being graded; they are "
                      f"not recorded", file=sys.stderr)
            return ExitCode.INTERRUPTED
        writers.finish(results)
        print_class_table(gradebook.results(light=True), plan, sys.stdout)
    finally:
        gradebook.close()
        if sandbox is not None:
            sandbox.close()
    print(f"\nGraded {len(results)} submission(s), reused {len(run.reused)} unchanged"
          + (f", {len(removed)} no longer found (kept in the gradebook)" if removed else "")
          + f" in {time.monotonic() - started:.1f} s "
          f"({executor.description if executor else f'--jobs {args.jobs}'}, isolation: {isolation}). "
          f"Reports: {visible(str(args.out / 'index.html'))}, "
          f"grades: {visible(str(args.out / 'grades.csv'))}")
    _warn_intake(intake, args.out)
    _report_cluster(executor)
    for level in str(isolation).split("/") if results or executor is None else ():
        _warn_isolation(level)
    if internal_errors:
        for line in internal_errors:
            print(f"hwgrader: error: grading failed for {line}", file=sys.stderr)
        return ExitCode.INTERNAL
    return ExitCode.OK


@contextlib.contextmanager
def _closing_on_error(sandbox):
    """Stop the sandbox's fork servers if setting up the batch fails (e.g. no submissions)."""
    try:
        yield sandbox
    except BaseException:
        if sandbox is not None:
            sandbox.close()
        raise


def _single_files(args) -> bool:
    """Every SOURCE is one .py/.ipynb file: grading them updates those students only. A folder or
    zip SOURCE is the whole class: students no longer in it leave the class files."""
    return all(Path(s).suffix.lower() in (".py", ".ipynb") and not Path(s).is_dir() for s in args.submissions)


def _shown_sources(sources: Sequence[Path]) -> str:
    return ", ".join(visible(str(s)) for s in sources)


def _check_out_dir(out: Path, *, create: bool = False) -> None:
    """``--out`` must be a folder hwgrader can write in; checked before anything is written."""
    shown = visible(str(out))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {shown} is a file, not a folder: give a folder for the reports")
    if not create:
        parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
        if not parent.is_dir():
            raise UsageError(f"--out {shown}: {visible(str(parent))} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"--out {shown}: no permission to write in {visible(str(parent))}")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".hwgrader-write-test-")
        probe.close()
    except OSError as exc:
        raise UsageError(f"--out {shown} is not writable: {exc.strerror or exc}") from None


def _intake_summary(intake, out: Path) -> str:
    counts = intake.counts()
    parts = ", ".join(f"{n} {status.value}" for status, n in counts.items())
    return (f"Found {len(intake.sources)} student(s) to grade; files: {parts} "
            f"(see {visible(str(out / 'intake.csv'))})")


def _warn_intake(intake, out: Path, shown: int = 10) -> None:
    from grader.assignment.intake import Status

    for status, word in ((Status.REJECTED, "rejected"), (Status.SUPERSEDED, "superseded")):
        entries = [e for e in intake.entries if e.status is status]
        if not entries:
            continue
        print(f"hwgrader: WARNING: {len(entries)} file(s) {word} (see {visible(str(out / 'intake.csv'))}):",
              file=sys.stderr)
        for e in entries[:shown]:
            print(f"  {visible(e.path)}: {visible(e.detail)}", file=sys.stderr)
        if len(entries) > shown:
            print(f"  ... and {len(entries) - shown} more", file=sys.stderr)


def _cluster_executor(args):
    """``--scheduler``: a Dask executor for the batch (``grader.distributed``), or None."""
    if not args.scheduler:
        return None
    from grader.distributed.cluster import parse_scheduler
    from grader.distributed.executor import DaskExecutor

    return DaskExecutor(parse_scheduler(args.scheduler), isolation=args.isolation)


def _report_cluster(executor) -> None:
    if executor is not None and executor.infrastructure_failures:
        print(f"hwgrader: {executor.infrastructure_failures} submission(s) kept killing the Dask workers "
              f"that graded them: recorded as not graded (infrastructure failure, regraded on the next "
              f"run), not as a zero", file=sys.stderr)


def _similarity_writer(out: Path, plan):
    from grader.similarity.writer import SimilarityWriter, load_base

    return SimilarityWriter(out, plan, base=load_base([plan.reference_dir] if plan.reference_dir else []))


def _check(args) -> int:
    from grader.grading.engine import grade_submission
    from grader.assignment.plan import build_plan, load_plan_json
    from grader.outputs.report import write_student_report
    from grader.assignment.rubric import load_rubric
    from grader.sandbox.session import Sandbox
    from grader.outputs.terminal import print_check_table

    if not args.file.is_file():
        raise UsageError(f"submission not found: {args.file}")
    if args.rubric is None and KIT_CASES.is_file():
        plan = load_plan_json(KIT_CASES)
    else:
        plan = build_plan(load_rubric(_rubric_path(args)), public_only=True)
    if args.question:
        plan = plan.select(args.question)
    isolation = _choose_isolation(args, allow_process=True).level
    with Sandbox(isolation) as sandbox:
        result = grade_submission(args.file, plan, sandbox=sandbox)
    report = args.report or Path(f"{result.student}-report.html")
    write_student_report(result, report, title=plan.title)
    passed = print_check_table(result, sys.stdout)
    print(f"\nReport: {visible(str(report))}")
    for writer in _ci_writers(args, result):
        writer.submission(result)
        writer.finish([result])
    return ExitCode.OK if passed else ExitCode.TESTS_FAILED


def _ci_writers(args, result) -> list:
    """The ``check --junit`` / ``--github`` writers, naming the file as the student typed it."""
    writers = []
    sources = {result.student: str(args.file)}
    if args.junit:
        from grader.integrations.junit import JUnitWriter

        writers.append(JUnitWriter(args.junit, sources))
    if args.github:
        from grader.integrations.github import GitHubWriter

        writers.append(GitHubWriter(sources))
    return writers


def _reference(args) -> int:
    from grader.outputs.terminal import print_lecture_answers

    print_lecture_answers(_full_plan(args), sys.stdout)
    return ExitCode.OK


def _kit(args) -> int:
    from grader.outputs.kit import export_kit

    out = export_kit(_full_plan(args), args.out, repo_root=PACKAGE_DIR.parent)
    print(f"Student kit written to {out}: install with `pip install {out}`, "
          f"then run `hwgrader check YOUR_FILE`.")
    return ExitCode.OK


def _manual(args) -> int:
    import getpass

    from grader.gradebook.incremental import refresh
    from grader.gradebook.manual import export_manual, import_manual
    from grader.gradebook.store import Gradebook

    with Gradebook.open(args.dir) as gradebook:
        if args.manual_command == "export":
            rows = export_manual(gradebook, args.file)
            print(f"Wrote {rows} row(s) to {args.file} (columns student,question,points,comment; "
                  f"empty points = not graded).")
            return ExitCode.OK
        try:
            grader = args.grader or getpass.getuser()
        except (KeyError, OSError):  # no user name in this environment
            grader = "manual import"
        summary = import_manual(gradebook, args.file, grader=grader)
        refresh(args.dir, summary.students, gradebook=gradebook)
    print(f"Imported {args.file}: {summary.changed} grade(s) changed, {summary.unchanged} unchanged, "
          f"{summary.skipped_empty} row(s) without points left as they were. Updated {args.dir / 'grades.csv'}, "
          f"{args.dir / 'index.html'} and {len(summary.students)} student(s)' reports.")
    return ExitCode.OK


def _export(args) -> int:
    from grader.gradebook.lms import export_lms, read_roster
    from grader.gradebook.store import Gradebook

    roster = read_roster(args.roster) if args.roster else None
    out = args.out or args.dir / f"{args.lms_format}-grades.csv"
    with Gradebook.open(args.dir) as gradebook:
        students, pending = export_lms(gradebook, args.lms_format, out, assignment=args.assignment, roster=roster)
    print(f"Wrote {out}: {students} student(s), {args.lms_format} format.")
    if pending:
        print(f"hwgrader: warning: {pending} student(s) still have written answers nobody graded; "
              f"those points count 0 in {out}", file=sys.stderr)
    return ExitCode.OK


def _serve(args) -> int:
    from grader.gradebook.server import serve

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    return serve(args.dir, host=args.host, port=args.port)


def _audit(args) -> int:
    from grader.insight.audit import audit_plan, print_audit

    audit = audit_plan(_full_plan(args))
    print_audit(audit, sys.stdout)
    return ExitCode.TESTS_FAILED if audit.uncaught else ExitCode.OK


def _mistakes(args) -> int:
    from grader.assignment.registry import ReferenceSet
    from grader.grading.clusters import read_clusters_json
    from grader.insight.mistakes import mistake_skeletons

    clusters = read_clusters_json(args.dir / "clusters.json")
    if not clusters:
        print(f"No wrong output in {args.dir} is shared by several students without a known mistake "
              f"explaining it.")
        return ExitCode.OK
    from grader.assignment.rubric import load_rubric

    refs = ReferenceSet.load(load_rubric(_rubric_path(args)).reference_dir)
    unknown = [c for c in clusters if c.function in refs.functions]
    print("# Add these to the reference package (they need `from grader.assignment.registry import mistake`).\n")
    print("\n\n".join(mistake_skeletons(unknown, refs)))
    return ExitCode.OK


def _bundle(args) -> int:
    from grader.grading.results import fmt_points
    from grader.integrations.gradescope_bundle import build_bundle

    info = build_bundle(args.out, _rubric_path(args), deps=args.deps, python_version=args.python_version,
                        platform=args.platform, isolation=args.isolation, timeout=args.timeout)
    written = ", ".join(f"{q.upper()} {fmt_points(p)}" for q, p in info.written_points.items())
    print(f"Gradescope autograder written to {info.path} ({info.size / 1e6:.1f} MB, dependencies: {info.deps}).")
    print(f"In Gradescope: upload it under Configure Autograder; set the autograder's points to "
          f"{fmt_points(info.autograder_points)}" + (f" and add the written parts as manually graded "
                                                     f"questions ({written})." if written else "."))
    return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
