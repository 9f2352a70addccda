"""Disguise a submission the way a student hiding a copy would: rename every variable,
reorder the functions, rewrite the comments. Used by tests and the benchmark."""

from __future__ import annotations

import ast
import re


def disguise(source: str, *, keep: set[str] = frozenset(), salt: str = "q") -> str:
    tree = ast.parse(source)
    params = {a.arg for node in ast.walk(tree) if isinstance(node, ast.arg) for a in [node]}
    handout = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("_"):
            bound.add(node.name)
    renames = {name: f"{salt}{i}_{name[::-1].strip('_')}" for i, name in enumerate(sorted(bound - params - handout - set(keep)))}
    out = source
    for old, new in renames.items():
        out = re.sub(rf"(?<![.\w]){re.escape(old)}\b", new, out)
    out = re.sub(r"#[^\n]*", lambda m: "# " + " ".join(reversed(m.group(0)[1:].split())) + " (rewritten)", out)
    blocks = out.split("\n\n\n")
    head, defs = blocks[0], blocks[1:]
    defs = defs[::-1]
    return head + "\n\n\n" + "\n\n\n".join(defs) + "\n"
