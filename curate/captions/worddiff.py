"""A word-level diff of two captions, as segments (never HTML strings): the report and the review app
highlight caption repairs with it."""

from __future__ import annotations

import difflib


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """``[(op, text)]`` with op ``same``, ``del`` (only in ``old``) or ``ins`` (only in ``new``).

    >>> word_diff("a cat sat", "a dog sat")
    [('same', 'a'), ('del', 'cat'), ('ins', 'dog'), ('same', 'sat')]
    """
    a, b = (old or "").split(), (new or "").split()
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", " ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", " ".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", " ".join(b[j1:j2])))
    return out
