"""Choosing one caption among candidates (pure Python, no model): the rule-cleaned original is the
incumbent; a sibling or generated caption replaces it only if its CLIP score beats the incumbent's
by ``min_gain``. Without scores, only the rules apply, except that an original with nothing left
after the rules falls back to the first usable sibling (another human caption of the same image).
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("original", "rules", "sibling", "generated")


@dataclass
class Candidate:
    """One caption that could be chosen, where it came from and its CLIP score (``None`` without CLIP)."""

    source: str
    text: str
    score: float | None = None

    @property
    def usable(self) -> bool:
        """Has at least one letter (a caption with nothing left is never chosen over a real one)."""
        return any(ch.isalpha() for ch in self.text)


def choose(candidates: list[Candidate], *, min_gain: float) -> int:
    """Index of the chosen candidate; ``candidates[0]`` is the incumbent (original or rule-cleaned).

    Parameters
    ----------
    candidates : list of Candidate
        The incumbent first, then siblings and generated captions in order of preference for ties.
    min_gain : float
        How much a challenger's score must exceed the incumbent's (CLIP cosine units).

    Returns
    -------
    int
        0 when the incumbent stays.
    """
    if not candidates:
        raise ValueError("choose() needs at least the incumbent candidate")
    inc = candidates[0]
    challengers = [(i, c) for i, c in enumerate(candidates[1:], start=1) if c.usable]
    if not challengers:
        return 0
    scored = [(i, c) for i, c in challengers if c.score is not None]
    if not inc.usable:
        # nothing left of the original: the best scored challenger, else the first usable one
        if scored:
            return max(scored, key=lambda ic: (ic[1].score, -ic[0]))[0]
        return challengers[0][0]
    if inc.score is None or not scored:
        return 0
    best_i, best = max(scored, key=lambda ic: (ic[1].score, -ic[0]))
    return best_i if best.score >= inc.score + min_gain else 0
