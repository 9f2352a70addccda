"""The reference side of an assignment: reference functions, input generators, known mistakes.

An assignment is a rubric (YAML) plus a reference *package* (a folder with
``__init__.py``). Every public function defined in one of its modules is a
reference, found by the name students must use (``batchnorm_forward``).
Two markers register the rest::

    @generator("separable_points")
    def separable_points(rng, n_pos, n_neg, d, margin): ...   # -> {"X": ..., "y": ...}

    @mistake("q1.unbiased_variance", of="batchnorm_forward",
             title="unbiased variance", hint="Divide by N, not N-1.")
    def unbiased_variance(x, gamma, beta, eps=1e-5): ...

Registration is validated when the package is loaded, and every mismatch is
named (pluggy-style): a mistake of an unknown function, a mistake whose
parameters differ from its reference's, a generator without an ``rng``
first parameter, a name registered twice.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader.errors import RegistrationError

_GENERATOR_MARK = "_hwgrader_generator"
_MISTAKE_MARK = "_hwgrader_mistake"


@dataclass(frozen=True)
class Mistake:
    """A named wrong variant of a reference function, with the hint it earns."""

    id: str
    of: str
    title: str
    hint: str
    function: Callable


def generator(name: str) -> Callable[[Callable], Callable]:
    """Register ``fn(rng, **params) -> dict of named inputs`` under ``name`` for rubric cases."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, _GENERATOR_MARK, name)
        return fn

    return mark


def mistake(id: str, *, of: str, title: str, hint: str) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the known mistake ``id`` of the reference function ``of``."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, _MISTAKE_MARK, (id, of, title, hint))
        return fn

    return mark


def _parameter_names(fn: Callable) -> list[str]:
    return list(inspect.signature(fn).parameters)


class ReferenceSet:
    """The validated contents of one reference package."""

    def __init__(self, root: Path, functions: dict[str, Callable],
                 generators: dict[str, Callable], mistakes: dict[str, Mistake]):
        self.root = root
        self.functions = functions
        self.generators = generators
        self.mistakes = mistakes

    def function(self, name: str) -> Callable:
        return self.functions[name]

    def mistakes_of(self, function_name: str) -> list[Mistake]:
        return [m for m in self.mistakes.values() if m.of == function_name]

    @classmethod
    def load(cls, root: Path) -> "ReferenceSet":
        """Import the package at ``root`` under a private name and collect what it registers."""
        root = Path(root).resolve()
        init = root / "__init__.py"
        if not init.is_file():
            raise RegistrationError(f"{root}: not a reference package (no __init__.py)")
        package = f"_hwgrader_reference_{abs(hash(str(root)))}"
        modules = [_import(package, init, root)]
        for path in sorted(root.glob("*.py")):
            if path.name != "__init__.py":
                modules.append(_import(f"{package}.{path.stem}", path, None))
        return cls._collect(root, modules)

    @classmethod
    def _collect(cls, root: Path, modules: list) -> "ReferenceSet":
        functions: dict[str, Callable] = {}
        generators: dict[str, Callable] = {}
        marked: list[tuple[str, tuple, Callable]] = []
        for module in modules:
            for attr, fn in vars(module).items():
                if not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                    continue  # imported from elsewhere; counted where it is defined
                where = f"{Path(inspect.getfile(fn)).name}:{fn.__name__}"
                if hasattr(fn, _GENERATOR_MARK):
                    name = getattr(fn, _GENERATOR_MARK)
                    if name in generators:
                        raise RegistrationError(f"{where}: generator {name!r} is registered twice")
                    params = _parameter_names(fn)
                    if not params or params[0] != "rng":
                        raise RegistrationError(
                            f"{where}: generator {name!r} must take 'rng' as its first parameter")
                    generators[name] = fn
                elif hasattr(fn, _MISTAKE_MARK):
                    marked.append((where, getattr(fn, _MISTAKE_MARK), fn))
                elif not attr.startswith("_"):
                    if attr in functions and functions[attr] is not fn:
                        raise RegistrationError(f"{where}: reference function {attr!r} is defined twice")
                    functions[attr] = fn
        mistakes: dict[str, Mistake] = {}
        for where, (mid, of, title, hint), fn in marked:
            if mid in mistakes:
                raise RegistrationError(f"{where}: mistake {mid!r} is registered twice")
            if of not in functions:
                raise RegistrationError(f"{where}: mistake {mid!r} is a variant of {of!r}, "
                                        f"which no reference module defines")
            want, got = _parameter_names(functions[of]), _parameter_names(fn)
            if want != got:
                raise RegistrationError(f"{where}: mistake {mid!r} takes ({', '.join(got)}) "
                                        f"but {of} takes ({', '.join(want)})")
            mistakes[mid] = Mistake(mid, of, title, hint, fn)
        return cls(root, functions, generators, mistakes)


def _import(name: str, path: Path, package_dir: Path | None):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise RegistrationError(f"{path}: cannot import reference module: "
                                f"{type(exc).__name__}: {exc}") from exc
    return module
