"""Reading submissions in the parent: notebooks become cells, magics are not run, bad files are graded as bad."""

from __future__ import annotations

import nbformat

from grader.assignment.intake import discover, read_source
from grader.assignment.submission import neutralise_magics, read_submission


def test_magics_and_shell_escapes_become_pass_keeping_lines():
    source = "%matplotlib inline\nimport numpy as np\nif True:\n    !pip install keras\nx = 1"
    out = neutralise_magics(source)
    assert out.split("\n")[1:3] == ["import numpy as np", "if True:"]
    assert out.split("\n")[3].startswith("    pass")
    assert out.count("\n") == source.count("\n")
    compile(out, "cell", "exec")


def test_cell_magics():
    assert neutralise_magics("%%bash\necho hi").strip() == ""
    assert neutralise_magics("%%time\nx = 1") == "\nx = 1"


def test_notebook_cells_and_markdown_answers(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Homework"),
                nbformat.v4.new_code_cell("%matplotlib inline\ndef f(x):\n    return x"),
                nbformat.v4.new_markdown_cell("**Answer Q1**\n因為 γ 和 β 是 learnable parameters。"),
                nbformat.v4.new_code_cell("from keras.layers import Dense")]
    path = tmp_path / "學生.ipynb"
    nbformat.write(nb, path)
    sub = read_submission(path)
    assert sub.student == "學生" and sub.load_error is None
    assert [u["cell"] for u in sub.units] == [2, 4]
    assert sub.units[0]["filename"] == "學生.ipynb [cell 2]"
    assert sub.markdown_answers == {"ANSWER_Q1": "因為 γ 和 β 是 learnable parameters。"}


def test_unreadable_files_are_load_errors_not_exceptions(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    (tmp_path / "latin1.py").write_bytes(b"x = '\xe9'\n")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    sources = discover([tmp_path]).sources
    assert [s.main.file_name for s in sources] == ["broken.ipynb", "latin1.py"]
    broken, latin1 = (read_source(s) for s in sources)
    assert broken.load_error.startswith("broken.ipynb: not a readable Jupyter notebook")
    assert latin1.load_error == "latin1.py: not UTF-8 text (byte 5)"
