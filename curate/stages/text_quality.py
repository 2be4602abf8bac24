"""``text_quality``: empty, too short or long, mostly symbols, long repeated-character runs."""

from __future__ import annotations

import re
from typing import Optional

import pyarrow as pa
from pydantic import Field

from curate.stages.base import Column, MapStage, Outputs, Score, StageParams, flag_table, register_stage

_WORD = re.compile(r"\w+", re.UNICODE)
_RUN = re.compile(r"(.)\1*", re.DOTALL)

OUTPUTS = Outputs(
    columns=(
        Column("n_words", pa.int32(), "score", "words"),
        Column("n_chars", pa.int32(), description="characters"),
        Column("non_letter_share", pa.float32(), "score", "share of non-space characters that are not letters"),
        Column("longest_run", pa.int32(), "score", "longest run of one character"),
    ),
    scores=(
        Score(column="n_words", flag="too_short", param="min_words", flags_when="below", label="words"),
        Score(column="n_words", flag="too_long", param="max_words", flags_when="above", label="words"),
        Score(column="non_letter_share", flag="mostly_symbols", param="max_non_letter_share", flags_when="above",
              label="non-letter share"),
        Score(column="longest_run", flag="repeated_chars", param="max_char_run", flags_when="above",
              label="longest character run"),
    ),
)
_SCHEMA = OUTPUTS.schema


class TextQualityParams(StageParams):
    min_words: int = Field(3, ge=0, description="flag texts with fewer words than this")
    max_words: Optional[int] = Field(None, ge=1, description="flag texts with more words than this (off by default)")
    max_non_letter_share: float = Field(
        0.5, ge=0, le=1, description="flag texts where this share or more of the non-space characters are not letters"
    )
    max_char_run: int = Field(5, ge=2, description="flag texts with a character repeated more than this many times in a row")


def measure_text(text: str) -> tuple[int, int, float, int]:
    """(words, characters, share of non-space characters that are not letters, longest run of one character)."""
    words = len(_WORD.findall(text))
    visible = [c for c in text if not c.isspace()]
    non_letters = sum(1 for c in visible if not c.isalpha())
    share = non_letters / len(visible) if visible else 0.0
    longest = max((m.end() - m.start() for m in _RUN.finditer(text) if not m.group(1).isspace()), default=0)
    return words, len(text), share, longest


@register_stage
class TextQuality(MapStage):
    """Empty text, too few or too many words, mostly non-letters, long runs of one character."""

    name = "text_quality"
    Params = TextQualityParams
    flags = ("empty_text", "too_short", "too_long", "mostly_symbols", "repeated_chars")

    def input_columns(self) -> list[str]:
        return ["text"]

    OUTPUTS = OUTPUTS

    def process(self, batch: pa.Table) -> pa.Table:
        p: TextQualityParams = self.params
        cols = {name: [] for name in _SCHEMA.names}
        flags, details = [], []
        for text in batch.column("text").to_pylist():
            if text is None or not text.strip():
                for c in cols:
                    cols[c].append(0 if c != "non_letter_share" else 0.0)
                flags.append("empty_text")
                details.append("no text" if text is None else "text is only whitespace")
                continue
            words, chars, share, run = measure_text(text)
            for c, v in zip(_SCHEMA.names, (words, chars, share, run)):
                cols[c].append(v)
            found = []
            if words < p.min_words:
                found.append(("too_short", f"{words} word{'s' if words != 1 else ''} < {p.min_words}"))
            if p.max_words is not None and words > p.max_words:
                found.append(("too_long", f"{words} words > {p.max_words}"))
            if share >= p.max_non_letter_share:
                found.append(("mostly_symbols", f"{share:.0%} of characters are not letters (limit {p.max_non_letter_share:.0%})"))
            if run > p.max_char_run:
                found.append(("repeated_chars", f"a character repeated {run} times in a row (limit {p.max_char_run})"))
            flags.append(found[0][0] if found else None)
            details.append("; ".join(d for _, d in found) if found else None)
        return flag_table(cols, flags, details, schema=_SCHEMA)
