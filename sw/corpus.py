"""Offline English evaluation text: the docstrings of Python standard-library modules.

The text is read from the interpreter's own standard-library sources with :mod:`ast` (nothing is
imported or executed): for each module in a fixed list, its module docstring, then the docstring of
every class, function and method in source order, each as ``"<qualified name>\\n<docstring>"``
(``inspect.cleandoc``-ed), separated by blank lines. It is deterministic for a given Python
version (the report records the version and the text's SHA-256).

Two disjoint module lists: :data:`CALIBRATION_MODULES` (CMoE activation statistics) and
:data:`EVALUATION_MODULES` (held-out perplexity). Token windows are consecutive, non-overlapping
slices of the tokenized text (:func:`token_windows`).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sysconfig
from pathlib import Path

import torch

__all__ = ["CALIBRATION_MODULES", "EVALUATION_MODULES", "module_docstrings", "corpus_text", "token_windows",
           "text_digest"]

CALIBRATION_MODULES = (
    "argparse", "subprocess", "pathlib", "functools", "json.decoder", "json.encoder", "logging",
    "unittest.case", "datetime", "shutil", "tarfile", "zipfile", "random", "inspect", "dataclasses",
    "enum", "csv", "gzip", "tempfile", "threading", "urllib.parse", "uuid", "warnings", "weakref",
    "email.message", "http.client", "smtplib", "socket", "pickle", "optparse", "configparser", "typing",
)
EVALUATION_MODULES = (
    "statistics", "fractions", "textwrap", "difflib", "heapq", "calendar", "shlex", "sched", "pprint",
    "queue", "bisect", "fnmatch", "glob", "string", "contextlib", "copy", "numbers", "abc", "getopt",
    "gettext", "imaplib", "mailbox", "timeit", "trace", "cmd", "codecs", "colorsys", "filecmp",
)


def _source(module: str) -> Path:
    """``<stdlib>/a/b.py`` or ``<stdlib>/a/b/__init__.py`` for module ``a.b`` (never imported)."""
    base = Path(sysconfig.get_paths()["stdlib"]).joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"module={module!r}: no Python source file {base}.py or {base}/__init__.py in this "
                            f"interpreter's standard library")


def module_docstrings(module: str) -> list[str]:
    """The docstrings of one standard-library module in source order, each prefixed by its
    qualified name (``module``, ``module.Class``, ``module.Class.method``)."""
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    found = []

    def visit(node, qualname: str) -> None:
        doc = ast.get_docstring(node, clean=True)
        if doc:
            found.append(f"{qualname}\n{inspect.cleandoc(doc)}")
        for child in node.body:
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, f"{qualname}.{child.name}")

    visit(tree, module)
    return found


def corpus_text(modules: tuple[str, ...]) -> str:
    """All docstrings of ``modules``, separated by blank lines."""
    return "\n\n".join(doc for module in modules for doc in module_docstrings(module))


def text_digest(text: str) -> str:
    """SHA-256 of the UTF-8 text (hex), to tell whether two runs saw the same text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_windows(ids: list[int], length: int, count: int, what: str) -> list[torch.Tensor]:
    """``count`` consecutive non-overlapping windows of ``length`` token ids, int64 (length,) each;
    :class:`ValueError` if the text is too short."""
    if length < 2 or count < 1:
        raise ValueError(f"{what}: length={length}, count={count}; need length >= 2 and count >= 1")
    if len(ids) < length * count:
        raise ValueError(f"{what}: {count} windows of {length} tokens need {length * count} tokens, the text has "
                         f"{len(ids)}")
    tensor = torch.tensor(ids[:length * count], dtype=torch.int64)
    return list(tensor.view(count, length).unbind(0))
