"""Paper 000's "Name" dataset: the Dave sentences' facts told about Dave and 19 other unique names.

The paper (section 3) describes it as "the same datapoints but swapping out the name 'Dave' for 19 other unique
names" and leaves the construction open. Ours: the 20 sentences of Table 6 are 20 facts, each with a subject name
(Gnarls, Alice, ..., Dave, ..., Trent: Dave and exactly 19 others). Every fact is told about every one of those 20
names, name by name in Table 6's order and fact by fact within a name, so the dataset has 20 x 20 = 400 sentences
and sentence ``20 * n + f`` is fact ``f`` about name ``n``. Only the leading subject is replaced ("Mallory's
favorite books are 'Dune' by Frank Herbert" keeps its Frank). Forgetting "Dave" removes his 20 sentences; the
other names' 380 sentences carry the *same* facts, so the retain split measures whether unlearning removes what
the model knows about Dave or what it knows about the facts.
"""
from __future__ import annotations

import re

_SUBJECT = re.compile(r"^([A-Z][a-z]+)(?='s\b|\b)")


def subject(sentence: str) -> str:
    """The sentence's leading name ("Laura's favorite ..." -> "Laura")."""
    match = _SUBJECT.match(sentence)
    if match is None:
        raise ValueError(f"sentence does not start with a capitalised name: {sentence!r}")
    return match.group(1)


def names_of(sentences: list[str]) -> list[str]:
    """The distinct subject names, in order of first appearance."""
    return list(dict.fromkeys(subject(s) for s in sentences))


def retell(sentence: str, name: str) -> str:
    """The same fact about ``name``: only the leading subject changes."""
    return name + sentence[len(subject(sentence)):]


def name_dataset(sentences: list[str]) -> list[str]:
    """Every fact about every subject name: ``len(names) * len(sentences)`` sentences, name-major."""
    names = names_of(sentences)
    if len(names) != len(sentences):
        raise ValueError("the Name dataset needs one distinct subject name per sentence")
    return [retell(fact, name) for name in names for fact in sentences]


def indices_about(sentences: list[str], name: str) -> list[int]:
    """Positions of the sentences whose subject is ``name``."""
    return [i for i, s in enumerate(sentences) if subject(s) == name]
