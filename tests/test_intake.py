"""Intake: real folders and zips in the layouts Canvas, Moodle and Gradescope download, with the
stray files, resubmissions, hostile names and links instructors actually get.

Discovery is tested directly (no grading: fast); the CLI is run once on the whole mixed folder and
its intake.csv, grades.csv and terminal output are checked byte for byte where it matters.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader.assignment import intake as I
from grader.assignment.intake import Status, discover, student_key
from grader.safetext import csv_cell, visible

ROOT = Path(__file__).resolve().parents[1]
CORRECT = (ROOT / "submissions" / "correct_module.py").read_text(encoding="utf-8")
NOTEBOOK = (ROOT / "submissions" / "colab_notebook.ipynb").read_text(encoding="utf-8")
HOMEWORK = {"batchnorm_forward", "batchnorm_backward", "reparameterize", "kl_to_standard_normal",
            "optimal_margin_svm", "baum_welch", "zero_insert", "subpixel_conv"}
HELPER = "import numpy as np\n\n\ndef center(x):\n    return x - x.mean(axis=0)\n"
ESC_NAME = "\x1b[2J\x1b[31mred\x1b[0m"
BIDI_NAME = "eve\u202efdp.exe"
OLD = time.mktime((2026, 11, 20, 10, 0, 0, 0, 0, -1))
NEW = time.mktime((2026, 11, 21, 10, 0, 0, 0, 0, -1))


def hwgrader(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          timeout=timeout, env=env)


def split_modules() -> tuple[str, str]:
    """correct_module.py as two modules that import each other: hw.py (Q1-Q3 and the try-out
    code at the end) imports Q4 and Q5 from more.py, which imports a function back from hw."""
    q4 = CORRECT.index("# ---------------------------------------------------------------- Q4")
    tail = CORRECT.index("# ---------------------------------------------------------------- trying")
    hw = CORRECT[:q4] + "from more import *  # noqa: F401,F403  (Q4, Q5)\n\n" + CORRECT[tail:]
    more = ("import numpy as np\n\nfrom hw import batchnorm_forward as _bn  # noqa: F401  (each imports the other)\n\n"
            + CORRECT[q4:tail])
    return hw, more


def write(path: Path, text: str, mtime: float = NEW) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def make_zip(path: Path, members: dict[str, str | bytes], *, date=(2026, 11, 21, 10, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=date)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return path


def build_download(root: Path) -> Path:
    """A folder mixing every layout, stray files, a resubmission, hostile names and links."""
    d = root / "downloads"
    # plain files at the top: a notebook and its .py export, an upper-case suffix, a stray helper
    write(d / "alice.py", CORRECT, OLD)
    write(d / "alice.ipynb", NOTEBOOK, OLD)
    write(d / "BOB.PY", CORRECT)
    write(d / "utils.py", HELPER)
    write(d / "grades.csv.py", CORRECT)
    write(d / "index.html.py", CORRECT)
    write(d / '=HYPERLINK("x").py', CORRECT)
    write(d / "@SUM(1).py", CORRECT)
    write(d / "+cmd.py", CORRECT)
    write(d / f"{ESC_NAME}.py", CORRECT)
    write(d / "new\nline.py", CORRECT)
    write(d / f"{BIDI_NAME}.py", CORRECT)
    latin1 = os.fsencode(d) + b"/M\xfcller.py"  # what unzip of a Windows zip leaves
    with open(latin1, "wb") as fh:
        fh.write(CORRECT.encode())
    # links: never followed
    os.symlink("/etc/shadow", d / "shadow.py")
    os.symlink("alice.py", d / "mallory.py")
    os.symlink("/etc", d / "etc_link")
    # stray files
    write(d / "notes.txt", "grading notes\n")
    write(d / ".DS_Store", "\0\0")
    write(d / "__MACOSX" / "._alice.py", "resource fork")
    write(d / ".ipynb_checkpoints" / "alice-checkpoint.ipynb", NOTEBOOK)
    # one folder per student: modules that import each other, and a data file
    hw, more = split_modules()
    write(d / "carol" / "hw.py", hw)
    write(d / "carol" / "more.py", more)
    write(d / "carol" / "data.csv", "1,2\n")
    write(d / "carol" / "random.py", "def pick(xs):\n    return xs[0]\n")  # shadows nothing: numpy's random stays
    # a student's own zip
    make_zip(d / "gina.zip", {"gina/hw.py": CORRECT, "__MACOSX/gina/._hw.py": "fork"})
    # a zip that is not one
    (d / "broken.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    # Canvas: a download zip with a resubmission pair, a LATE notebook and a student's zip
    make_zip(d / "canvas_download.zip", {
        "doejane_1002_5002_hw.py": "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    return x\n",
        "doejane_1002_5002_hw-1.py": CORRECT,
        "roelee_LATE_1003_5003_homework.ipynb": NOTEBOOK,
        "smithdan_1004_5004_hw.zip": _zip_bytes({"hw/hw.py": CORRECT, "hw/.DS_Store": "x"}),
    })
    # Moodle: a folder per submission and a flat file, plus an online text
    write(d / "moodle" / "Erin Ek_2001_assignsubmission_file_" / "hw.py", CORRECT)
    write(d / "moodle" / "Erin Ek_2001_assignsubmission_onlinetext_" / "onlinetext.html", "<p>hi</p>")
    write(d / "moodle" / "Frank Fu_2002_assignsubmission_file_homework.py", CORRECT)
    # Gradescope export
    write(d / "gradescope_export" / "submission_metadata.yml", GRADESCOPE_YML)
    write(d / "gradescope_export" / "submission_3001" / "hw.py", CORRECT)
    write(d / "gradescope_export" / "submission_3002" / "hw.ipynb", NOTEBOOK)
    return d


GRADESCOPE_YML = """\
submission_3001:
  :submitters:
  - :name: Hana Ito
    :sid: '900123'
    :email: hana@example.edu
  :created_at: 2026-11-21 10:00:00.000000000 -08:00
  :score: 0.0
  :history: []
submission_3002:
  :submitters:
  - :name: Ian Jo
    :sid: '900456'
    :email: ian@example.edu
  :created_at: 2026-11-21 11:00:00.000000000 -08:00
  :score: 0.0
"""


def _zip_bytes(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 21, 10, 0, 0)), data)
    return buf.getvalue()


def key_of(name: str, raw: bytes | None = None) -> str:
    return student_key(name, raw)


# ----------------------------------------------------------------------------- discovery

@pytest.fixture
def download(tmp_path):
    return build_download(tmp_path)


def test_every_student_found_once_with_lms_identity(download):
    intake = discover([download], homework=HOMEWORK)
    by_student = {s.student: s for s in intake.sources}
    expected = {
        "alice", "BOB", "utils", key_of("grades.csv"), key_of("index.html"), key_of('=HYPERLINK("x")'),
        key_of("@SUM(1)"), key_of("+cmd"), key_of(ESC_NAME), key_of("new\nline"), key_of(BIDI_NAME),
        key_of("Müller", b"M\xfcller"), "carol", "gina",
        "doejane_1002", "roelee_1003", "smithdan_1004", "Erin_Ek_2001", "Frank_Fu_2002",
        "Hana_Ito_900123", "Ian_Jo_900456",
    }
    assert set(by_student) == expected
    assert len(intake.sources) == len(expected)  # one submission per student
    for key in by_student:
        assert I.is_safe_key(key) or "~" in key
        assert "." not in key and "/" not in key and key.casefold() not in I.RESERVED_NAMES
        assert all(ch.isprintable() for ch in key)
    assert by_student["alice"].files[0].name == "alice.ipynb"  # the notebook, not its export
    assert [f.name for f in by_student["carol"].files] == ["hw.py", "more.py", "random.py"]
    assert by_student["doejane_1002"].files[0].data == CORRECT.encode()  # hw-1.py: the resubmission
    assert by_student["doejane_1002"].files[0].name == "hw.py"
    assert (by_student["doejane_1002"].lms_id, by_student["doejane_1002"].layout) == ("1002", "canvas")
    assert [f.name for f in by_student["smithdan_1004"].files] == ["hw/hw.py"]
    assert by_student["Erin_Ek_2001"].display_name == "Erin Ek"
    assert by_student["Erin_Ek_2001"].lms_id == "2001"
    assert by_student["Hana_Ito_900123"].display_name == "Hana Ito"
    assert by_student["Hana_Ito_900123"].lms_id == "900123"
    assert by_student[key_of("Müller", b"M\xfcller")].display_name == "Müller"
    assert by_student[key_of(BIDI_NAME)].display_name == BIDI_NAME


def test_entries_account_for_everything_found(download):
    intake = discover([download], homework=HOMEWORK)
    status = {e.path: (e.status, e.detail) for e in intake.entries}
    d = "" if False else str(download)
    assert status[f"{d}/alice.py"][0] is Status.SUPERSEDED
    assert "notebook of the same name" in status[f"{d}/alice.py"][1]
    assert status[f"{d}/alice.ipynb"][0] is Status.GRADED
    assert status[f"{d}/shadow.py"] == (Status.REJECTED, "symbolic link (links are never followed)")
    assert status[f"{d}/mallory.py"][0] is Status.REJECTED
    assert status[f"{d}/etc_link"][0] is Status.REJECTED
    assert status[f"{d}/notes.txt"] == (Status.IGNORED, "not a .py or .ipynb file")
    assert status[f"{d}/.DS_Store"][0] is Status.IGNORED
    assert status[f"{d}/__MACOSX/"][0] is Status.IGNORED
    assert status[f"{d}/.ipynb_checkpoints/"] == (Status.IGNORED, "Jupyter checkpoints (not searched)")
    assert status[f"{d}/broken.zip"][0] is Status.REJECTED and "not a readable zip" in status[f"{d}/broken.zip"][1]
    assert status[f"{d}/canvas_download.zip/doejane_1002_5002_hw.py"][0] is Status.SUPERSEDED
    assert status[f"{d}/canvas_download.zip/doejane_1002_5002_hw-1.py"][0] is Status.GRADED
    assert status[f"{d}/gina.zip/__MACOSX/"][0] is Status.IGNORED
    assert status[f"{d}/gradescope_export/submission_metadata.yml"][0] is Status.IGNORED
    assert status[f"{d}/moodle/Erin Ek_2001_assignsubmission_onlinetext_/onlinetext.html"][0] is Status.IGNORED
    assert status[f"{d}/carol/data.csv"] == (Status.IGNORED, "not a .py or .ipynb file")
    # nothing was read through a link: no source holds /etc/shadow's bytes
    shadow = Path("/etc/shadow").read_bytes() if os.access("/etc/shadow", os.R_OK) else b"root:"
    assert not any(shadow[:20] in f.data for s in intake.sources for f in s.files)
    counts = intake.counts()
    assert counts[Status.REJECTED] == 4 and counts[Status.SUPERSEDED] == 2


def test_keys_are_stable_unique_and_never_a_class_file():
    assert student_key("alice") == "alice" and student_key("學生_103590450") == "學生_103590450"
    assert student_key("José") == "José" and student_key("नमस्ते") == "नमस्ते"  # combining marks are letters
    for name in ("grades.csv", "index.html", "intake.csv", "similarity", "gradebook", "Similarity", "CON",
                 "gradebook.sqlite", ".hidden", "a b", "x/y", "..", "", "-rf", ESC_NAME, BIDI_NAME):
        key = student_key(name)
        assert "~" in key and key == student_key(name), name  # stable
        assert key.casefold() not in I.RESERVED_NAMES and "." not in key
    assert student_key("grades.csv") != student_key("grades_csv")  # distinct names never merge
    assert student_key("grades_csv") == "grades_csv"
    nfd = "Jose\u0301"  # macOS writes names decomposed
    assert student_key(nfd) != "José" and student_key(nfd).startswith("José~")
    assert student_key("M\udcfcller", b"M\xfcller").startswith("Müller~")


def test_single_file_and_zip_sources_and_several_at_once(tmp_path, download):
    one = discover([download / "BOB.PY"], homework=HOMEWORK)
    assert [s.student for s in one.sources] == ["BOB"]
    z = discover([download / "canvas_download.zip"], homework=HOMEWORK)
    assert {s.student for s in z.sources} == {"doejane_1002", "roelee_1003", "smithdan_1004"}
    both = discover([download / "BOB.PY", download / "gina.zip"], homework=HOMEWORK)
    assert {s.student for s in both.sources} == {"BOB", "gina"}


def test_one_students_folder_as_source_is_one_submission(tmp_path):
    hw, more = split_modules()
    write(tmp_path / "carol" / "hw.py", hw)
    write(tmp_path / "carol" / "more.py", more)
    intake = discover([tmp_path / "carol"], homework=HOMEWORK)
    assert [(s.student, [f.name for f in s.files]) for s in intake.sources] == [("carol", ["hw.py", "more.py"])]


def test_a_class_folder_inside_a_folder_is_a_grouping_folder(tmp_path):
    write(tmp_path / "section1" / "ann.py", CORRECT)
    write(tmp_path / "section1" / "ben.py", CORRECT)
    write(tmp_path / "section2" / "cat" / "hw.py", CORRECT)
    write(tmp_path / "section2" / "dan" / "hw.py", CORRECT)
    intake = discover([tmp_path], homework=HOMEWORK)
    assert sorted(s.student for s in intake.sources) == ["ann", "ben", "cat", "dan"]


def test_newest_resubmission_wins(tmp_path):
    # the same student twice: as a folder (old) and as a zip (new); and a Canvas LATE resubmission
    write(tmp_path / "dl" / "zoe" / "hw.py", "def batchnorm_forward(x, g, b, eps=1e-5):\n    return x\n", OLD)
    make_zip(tmp_path / "dl" / "zoe.zip", {"hw.py": CORRECT})
    make_zip(tmp_path / "dl" / "canvas.zip", {"kimyu_77_88_hw.py": "x = 1\n",
                                              "kimyu_LATE_77_99_hw.py": CORRECT})
    intake = discover([tmp_path / "dl"], homework=HOMEWORK)
    by = {s.student: s for s in intake.sources}
    assert by["zoe"].files[0].data == CORRECT.encode() and by["zoe"].layout == "zip"
    assert by["kimyu_77"].files[0].data == CORRECT.encode()
    sup = {e.path: e.detail for e in intake.entries if e.status is Status.SUPERSEDED}
    assert set(sup) == {f"{tmp_path}/dl/zoe/hw.py", f"{tmp_path}/dl/canvas.zip/kimyu_77_88_hw.py"}
    assert all("a newer submission is graded" in d for d in sup.values())


def test_unsafe_zips_are_rejected_and_the_rest_goes_on(tmp_path, monkeypatch):
    d = tmp_path / "dl"
    write(d / "ok.py", CORRECT)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.py", CORRECT)
        z.writestr("/etc/evil.py", CORRECT)
        z.writestr("fine/hw.py", CORRECT)
        link = zipfile.ZipInfo("fine/link.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/etc/shadow")
    (d / "slip.zip").write_bytes(buf.getvalue())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/hw.py", b"#" * 5_000_000)  # ~1000:1
    (d / "bomb.zip").write_bytes(bomb.getvalue())
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as z:
        for i in range(30):
            z.writestr(f"m/f{i}.txt", "x")
    (d / "many.zip").write_bytes(many.getvalue())
    monkeypatch.setattr(I, "ZIP_MAX_MEMBERS", 20)
    intake = discover([d], homework=HOMEWORK)
    st = {e.path: (e.status, e.detail) for e in intake.entries}
    assert st[f"{d}/slip.zip/../evil.py"] == (Status.REJECTED, "'..' in its path inside the zip (not read)")
    assert st[f"{d}/slip.zip//etc/evil.py"] == (Status.REJECTED, "absolute path in the zip (not read)")
    assert st[f"{d}/slip.zip/fine/link.py"][0] is Status.REJECTED
    assert "compressed" in st[f"{d}/bomb.zip"][1] and st[f"{d}/bomb.zip"][0] is Status.REJECTED
    assert st[f"{d}/many.zip"] == (Status.REJECTED, "zip has 30 members, more than the limit 20 (not read)")
    assert {s.student for s in intake.sources} == {"ok", "slip"}  # the safe member is still graded
    assert [f.name for f in next(s for s in intake.sources if s.student == "slip").files] == ["fine/hw.py"]


def test_nothing_outside_the_source_is_read_through_a_link_in_a_subfolder(tmp_path):
    d = tmp_path / "dl"
    write(d / "ann" / "hw.py", CORRECT)
    os.symlink("/etc", d / "ann" / "etc")
    os.symlink("/etc/passwd", d / "ann" / "passwd.py")
    intake = discover([d], homework=HOMEWORK)
    [ann] = intake.sources
    assert [f.name for f in ann.files] == ["hw.py"]
    assert {e.path for e in intake.entries if e.status is Status.REJECTED} == {f"{d}/ann/etc", f"{d}/ann/passwd.py"}


def test_missing_or_wrong_kind_of_source_is_a_usage_error(tmp_path):
    from grader.errors import UsageError

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="is not a folder, a .py or .ipynb file, or a .zip"):
        discover([tmp_path / "notes.txt"])
    with pytest.raises(UsageError, match="submissions not found"):
        discover([tmp_path / "nope"])


# ----------------------------------------------------------------------------- safe text

def test_visible_and_csv_cells():
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("eve\u202efdp") == "eve\\u202efdp"
    assert visible("M\udcfcller") == "M\\xfcller"
    assert visible("two\nlines\r") == "two\\x0alines\\x0d"
    assert visible("two\nlines\tok", keep_lines=True) == "two\nlines\tok"
    assert visible("學生 José नमस्ते") == "學生 José नमस्ते"
    for cell in ('=HYPERLINK("x")', "@SUM(1)", "+cmd", "-cmd"):
        assert csv_cell(cell) == "'" + cell
    assert csv_cell("\tx") == "\\x09x" and csv_cell("\r=1") == "\\x0d=1"  # escaped: no longer a formula
    assert csv_cell("alice") == "alice" and csv_cell("0.5") == "0.5"


# ----------------------------------------------------------------------------- the CLI, end to end

def test_grade_a_mixed_lms_download(tmp_path):
    build_download(tmp_path)
    proc = hwgrader("grade", "downloads", "--out", "out", "--jobs", "2", cwd=tmp_path)
    stdout, stderr = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    assert proc.returncode == 0, stderr
    out = tmp_path / "out"
    assert (out / "index.html").is_file() and (out / "grades.csv").is_file()
    intake_rows = list(csv.reader(io.StringIO((out / "intake.csv").read_text(encoding="utf-8"))))
    assert intake_rows[0] == ["path", "student", "status", "detail"]
    assert (out / "intake.csv").read_text(encoding="utf-8") == EXPECTED_INTAKE_CSV.format(
        grades=key_of("grades.csv"), index=key_of("index.html"), hyper=key_of('=HYPERLINK("x")'),
        sum=key_of("@SUM(1)"), cmd=key_of("+cmd"), esc=key_of(ESC_NAME), nl=key_of("new\nline"),
        bidi=key_of(BIDI_NAME), muller=key_of("Müller", b"M\xfcller"))

    grades = list(csv.reader(io.StringIO((out / "grades.csv").read_text(encoding="utf-8"))))
    assert grades[0] == ["student", "q1", "q2", "q3", "q4", "q5", "total", "pending"]
    rows = {r[0]: r for r in grades[1:]}
    assert len(rows) == 21 and len(grades) == 22
    for key, row in rows.items():
        assert not row[0].startswith(("=", "+", "-", "@", "\t", "\r")), row
    # every real student has full marks on the code (88; 12 points of written answers wait for a
    # person), the split modules included; the stray helper is a load error
    assert {k for k, r in rows.items() if r[1:] == ["14", "14", "20", "20", "20", "88", "12"]} == set(rows) - {"utils"}
    assert rows["utils"][1:] == ["0"] * 6 + ["12"]
    utils = json.loads((out / "utils" / "results.json").read_text(encoding="utf-8"))
    assert "utils.py defines none of the homework's functions" in utils["extra_data"]["load_error"]
    hana = json.loads((out / "Hana_Ito_900123" / "results.json").read_text(encoding="utf-8"))
    assert (hana["extra_data"]["name"], hana["extra_data"]["lms_id"]) == ("Hana Ito", "900123")
    # every student folder is its key; no class file was overwritten by a student
    assert (out / key_of("grades.csv") / "report.html").is_file()
    class_files = {p.name for p in out.iterdir() if p.is_file()}
    assert {"gradebook.sqlite", "grades.csv", "index.html", "intake.csv"} <= class_files
    assert not class_files & set(rows) and {p.name for p in out.iterdir() if p.is_dir()} == set(rows)

    # the terminal: counts, warnings, and no raw control character anywhere
    assert "Found 21 student(s) to grade; files: 23 graded, 0 reused, 2 superseded, 10 ignored, 4 rejected" in stdout
    assert "hwgrader: WARNING: 4 file(s) rejected" in stderr and "hwgrader: WARNING: 2 file(s) superseded" in stderr
    for text in (stdout, stderr):
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    table = stdout.splitlines()
    assert any(line.startswith(key_of(ESC_NAME)) for line in table)
    assert f"  {visible('downloads/' + ESC_NAME)}" not in stderr  # graded, not warned about
    # HTML: bidi and escapes visible, names as text
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "\u202e" not in index and "\x1b" not in index
    report = (out / key_of(BIDI_NAME) / "report.html").read_text(encoding="utf-8")
    assert "\u202e" not in report
    # nothing from outside the folder was read
    if os.access("/etc/shadow", os.R_OK):
        first = Path("/etc/shadow").read_text(errors="replace").splitlines()[0]
        for p in out.rglob("*"):
            if p.is_file():
                assert first not in p.read_text(encoding="utf-8", errors="replace"), p


EXPECTED_INTAKE_CSV = """\
path,student,status,detail
downloads/\\x1b[2J\\x1b[31mred\\x1b[0m.py,{esc},graded,
downloads/+cmd.py,{cmd},graded,
downloads/.DS_Store,,ignored,hidden (dot) file or folder
downloads/.ipynb_checkpoints/,,ignored,Jupyter checkpoints (not searched)
"downloads/=HYPERLINK(""x"").py",{hyper},graded,
downloads/@SUM(1).py,{sum},graded,
downloads/BOB.PY,BOB,graded,
downloads/Müller.py,{muller},graded,
downloads/__MACOSX/,,ignored,macOS resource fork folder (__MACOSX) (not searched)
downloads/alice.ipynb,alice,graded,
downloads/alice.py,alice,superseded,a notebook of the same name is graded: downloads/alice.ipynb
downloads/broken.zip,,rejected,not a readable zip file (File is not a zip file)
downloads/canvas_download.zip/doejane_1002_5002_hw-1.py,doejane_1002,graded,Canvas download
downloads/canvas_download.zip/doejane_1002_5002_hw.py,doejane_1002,superseded,Canvas resubmission: superseded by doejane_1002_5002_hw-1.py
downloads/canvas_download.zip/roelee_LATE_1003_5003_homework.ipynb,roelee_1003,graded,Canvas download
downloads/canvas_download.zip/smithdan_1004_5004_hw.zip/hw/.DS_Store,smithdan_1004,ignored,hidden (dot) file or folder
downloads/canvas_download.zip/smithdan_1004_5004_hw.zip/hw/hw.py,smithdan_1004,graded,Canvas download
downloads/carol/data.csv,carol,ignored,not a .py or .ipynb file
downloads/carol/hw.py,carol,graded,folder per student; one of 3 files of this submission
downloads/carol/more.py,carol,graded,folder per student; one of 3 files of this submission
downloads/carol/random.py,carol,graded,folder per student; one of 3 files of this submission
downloads/etc_link,,rejected,symbolic link (links are never followed)
downloads/eve\\u202efdp.exe.py,{bidi},graded,
downloads/gina.zip/__MACOSX/,gina,ignored,macOS resource fork folder (__MACOSX) (not searched)
downloads/gina.zip/gina/hw.py,gina,graded,zip per student
downloads/grades.csv.py,{grades},graded,
downloads/gradescope_export/submission_3001/hw.py,Hana_Ito_900123,graded,Gradescope export
downloads/gradescope_export/submission_3002/hw.ipynb,Ian_Jo_900456,graded,Gradescope export
downloads/gradescope_export/submission_metadata.yml,,ignored,Gradescope export metadata (read for the students' names and ids)
downloads/index.html.py,{index},graded,
downloads/mallory.py,mallory,rejected,symbolic link (links are never followed)
downloads/moodle/Erin Ek_2001_assignsubmission_file_/hw.py,Erin_Ek_2001,graded,Moodle download
downloads/moodle/Erin Ek_2001_assignsubmission_onlinetext_/,Erin_Ek_2001,ignored,Moodle onlinetext submission (not code)
downloads/moodle/Erin Ek_2001_assignsubmission_onlinetext_/onlinetext.html,Erin_Ek_2001,ignored,Moodle onlinetext submission (not code)
downloads/moodle/Frank Fu_2002_assignsubmission_file_homework.py,Frank_Fu_2002,graded,Moodle download
downloads/new\\x0aline.py,{nl},graded,
downloads/notes.txt,,ignored,not a .py or .ipynb file
downloads/shadow.py,shadow,rejected,symbolic link (links are never followed)
downloads/utils.py,utils,graded,
"""


# ----------------------------------------------------------------------------- instructor errors

def test_out_that_is_a_file_or_not_writable_and_wrong_sources_are_one_line_exit_2(tmp_path):
    write(tmp_path / "subs" / "ann.py", CORRECT)
    (tmp_path / "taken").write_text("not a folder")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "strays" / "readme.md", "x")
    cases = [
        (("grade", "subs", "--out", "taken"),
         "hwgrader: error: --out taken is a file, not a folder: give a folder for the reports"),
        (("grade", "subs", "--out", "taken/reports"),
         "hwgrader: error: --out taken/reports: taken is a file, not a folder"),
        (("grade", "subs", "--out", "/proc/hwgrader-reports"),
         "hwgrader: error: --out /proc/hwgrader-reports is not writable: No such file or directory"),
        (("grade", "notes.txt", "--out", "o1"),
         "hwgrader: error: notes.txt is not a folder, a .py or .ipynb file, or a .zip"),
        (("grade", "empty", "--out", "o2"),
         "hwgrader: error: no submissions found in empty: looked for .py and .ipynb files (any case, at any "
         "depth, inside .zip files too); see o2/intake.csv"),
        (("grade", "strays", "--out", "o3"),
         "hwgrader: error: no submissions found in strays: looked for .py and .ipynb files (any case, at any "
         "depth, inside .zip files too); see o3/intake.csv"),
    ]
    for args, message in cases:
        proc = hwgrader(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.decode() == message + "\n", args
        assert proc.stdout == b"", args
    assert not (tmp_path / "o1").exists()  # nothing written for a usage error
    assert (tmp_path / "o3" / "intake.csv").read_text() == (
        "path,student,status,detail\nstrays/readme.md,,ignored,not a .py or .ipynb file\n")
    assert sorted(p.name for p in (tmp_path / "o3").iterdir()) == ["intake.csv"]


def test_grading_one_students_file_into_an_existing_out_keeps_the_others(tmp_path):
    for name in ("ann", "ben", "cat"):
        write(tmp_path / "subs" / f"{name}.py", CORRECT)
    first = hwgrader("grade", "subs", "--out", "out", "--jobs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "out" / "grades.csv").read_text()
    # ben fixes nothing and breaks Q1; only ben is regraded
    broken = CORRECT.replace("def batchnorm_forward(", "def batchnorm_forward_renamed(")
    write(tmp_path / "subs" / "ben.py", broken)
    again = hwgrader("grade", "subs/ben.py", "--out", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    assert [r[0] for r in rows[1:]] == ["ann", "ben", "cat"]
    old = {r[0]: r for r in csv.reader(io.StringIO(before))}
    assert rows[1] == old["ann"] and rows[3] == old["cat"]
    assert rows[2] != old["ben"] and float(rows[2][-2]) < float(old["ben"][-2])  # total
    index = (tmp_path / "out" / "index.html").read_text()
    assert all(f'data-student="{n}"' in index for n in ("ann", "ben", "cat"))
    assert "Found 1 student(s) to grade" in again.stdout.decode()
    # the whole folder again: nothing changed since, so every student is reused, none re-run
    third = hwgrader("grade", "subs", "--out", "out", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert (tmp_path / "out" / "intake.csv").read_text() == (
        "path,student,status,detail\nsubs/ann.py,ann,reused,\nsubs/ben.py,ben,reused,\nsubs/cat.py,cat,reused,\n")
    assert "Graded 0 submission(s), reused 3 unchanged" in third.stdout.decode()


def test_a_student_whose_files_cannot_be_written_does_not_stop_the_batch(tmp_path):
    for name in ("ann", "ben", "cat"):
        write(tmp_path / "subs" / f"{name}.py", CORRECT)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "ben").write_text("a file where ben's folder goes")
    proc = hwgrader("grade", "subs", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 3
    assert "hwgrader: error: grading failed for ben: writing its files failed:" in proc.stderr.decode()
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    assert [r[0] for r in rows[1:]] == ["ann", "ben", "cat"]
    assert (tmp_path / "out" / "cat" / "report.html").is_file() and (tmp_path / "out" / "index.html").is_file()


def test_ctrl_c_writes_the_class_files_of_the_students_graded(tmp_path):
    slow = "import time\ntime.sleep(3)\n" + CORRECT  # slow enough to be interrupted, quick to stop
    for name in ("a1", "a2"):
        write(tmp_path / "subs" / f"{name}.py", CORRECT)
    for name in ("z1", "z2", "z3"):
        write(tmp_path / "subs" / f"{name}.py", slow)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "grader", "grade", "subs", "--out", "out"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    seen = b""
    deadline = time.monotonic() + 120
    while b"[2/5]" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    assert b"[2/5] a2" in seen, seen
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to hwgrader and every process of its group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    err = (seen + err).decode()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "[3/5]" not in err, err  # the student cut short is not shown as graded (nor written)
    assert "hwgrader: interrupted: 2 of 5 student(s) graded (and 0 reused); class files written in out" in err
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / "grades.csv").read_text())))
    assert [r[0] for r in rows[1:]] == ["a1", "a2"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith("z")]
    assert (tmp_path / "out" / "index.html").is_file()
    assert not list((tmp_path / "out").glob(".*.tmp"))  # no half-written temp file left


def test_out_inside_the_source_is_not_searched(tmp_path):
    write(tmp_path / "subs" / "ann.py", CORRECT)
    write(tmp_path / "subs" / "reports" / "ann" / "stale.py", CORRECT)
    intake = discover([tmp_path / "subs"], homework=HOMEWORK, skip=[tmp_path / "subs" / "reports"])
    assert [s.student for s in intake.sources] == ["ann"]
    assert (f"{tmp_path}/subs/reports/", Status.IGNORED, "hwgrader's --out folder (not searched)") in {
        (e.path, e.status, e.detail) for e in intake.entries}
