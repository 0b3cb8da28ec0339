"""The prose of the Dave reproductions' summaries: text templates beside this file, filled with measured values.

The measurement code computes numbers (and the few verdict words that follow from them); the sentences that
carry them live in ``templates/*.txt`` as ``string.Template`` text with named placeholders, so the narrative can
be read and edited without touching the measurement.
"""
from __future__ import annotations

from importlib.resources import files
from string import Template
from typing import Any


def template(name: str) -> Template:
    """``templates/<name>.txt`` (its final newline dropped: the summaries join lines themselves)."""
    text = files("tasks.language.reproduce").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")
    return Template(text.removesuffix("\n"))


def fill(name: str, **values: Any) -> str:
    """The template ``name`` with every placeholder replaced; a missing value is a KeyError, never silent."""
    return template(name).substitute({key: str(value) for key, value in values.items()})


def fill_lines(name: str, **values: Any) -> list[str]:
    """``fill`` split into lines, for summaries assembled from line lists."""
    return fill(name, **values).split("\n")
