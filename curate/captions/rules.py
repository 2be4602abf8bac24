"""Rule-based caption cleaning: small functions, each returning ``(new_text, changed)``.

Every rule is registered in :data:`RULES` under the name used in YAML (``rules: [html, urls, ...]``).
:class:`RuleSet` applies the chosen rules in the canonical order of :data:`RULE_ORDER` (whatever the
order in the YAML list) and reports which ones changed the text.

The guiding rule is *leave clean captions alone*: a caption no rule fires on comes back
byte-identical, including its edge whitespace and double spaces (cosmetic whitespace alone is not a
reason to rewrite a caption). When any rule fires, the result is also whitespace-normalised
(runs of spaces collapsed, ends stripped).

Rules never change letter case and never paraphrase; they remove or decode. Rules are pure Python
(``ftfy`` is imported lazily, and only for non-ASCII captions).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from curate.errors import require

#: Default boilerplate phrases (extendable in YAML with ``boilerplate:``).
DEFAULT_BOILERPLATE = (
    "stock photo", "stock image", "stock picture", "royalty free", "royalty-free", "click here",
    "image may contain", "free download", "all rights reserved", "getty images", "shutterstock",
    "istockphoto", "dreamstime", "alamy",
)

BOILERPLATE_MODES = ("extend", "replace")


def boilerplate_phrases(phrases: Sequence[str] = (), mode: str = "extend") -> tuple[str, ...]:
    """The phrases the boilerplate rule removes: ``phrases`` added to :data:`DEFAULT_BOILERPLATE`
    (``mode="extend"``, the default) or ``phrases`` alone (``mode="replace"``); duplicates dropped."""
    if mode not in BOILERPLATE_MODES:
        raise ValueError(f"boilerplate mode must be one of {', '.join(BOILERPLATE_MODES)}, got {mode!r}")
    base = DEFAULT_BOILERPLATE if mode == "extend" else ()
    return tuple(dict.fromkeys(p for p in (*base, *phrases) if p.strip()))


_WS = re.compile(r"\s+")
_SEPARATORS = " \t\n\r-\u2013\u2014|:;,/"


def normalize_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


_EMPTY_BRACKETS = re.compile(r"\(\s*[-,;:|]?\s*\)|\[\s*[-,;:|]?\s*\]|\{\s*\}")
_SPACE_BEFORE_PUNCT_AFTER_REMOVAL = re.compile(r"\s+([,;:])(?=\s*[,;:.!?]|\s*$)")


def _tidy(text: str) -> str:
    """Clean up after a removal: empty brackets, doubled separators, separators at the ends."""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT_AFTER_REMOVAL.sub("", text)
    text = re.sub(r"\s*([,;])\s*(?:[,;]\s*)+", r"\1 ", text)
    text = normalize_whitespace(text)
    text = re.sub(r"\s+([.!?])$", r"\1", text)
    return text.strip(_SEPARATORS)


@dataclass
class RuleOptions:
    """What rules may need besides the text (compiled once per stage)."""

    boilerplate: Sequence[str] = DEFAULT_BOILERPLATE
    _boilerplate_re: re.Pattern | None = field(default=None, init=False, repr=False)
    _first_words: frozenset | None = field(default=None, init=False, repr=False)

    def first_words(self) -> frozenset[str]:
        """Every phrase in lower case with single spaces, for a cheap "could it match?" test."""
        if self._first_words is None:
            self._first_words = frozenset(" ".join(p.lower().split()) for p in self.boilerplate if p.strip())
        return self._first_words

    def boilerplate_re(self) -> re.Pattern | None:
        if self._boilerplate_re is None and self.boilerplate:
            phrases = sorted({p.strip() for p in self.boilerplate if p.strip()}, key=len, reverse=True)
            alts = "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
            self._boilerplate_re = re.compile(
                rf"(?i)(?:\b(?:an?|the)\s+)?(?<!\w)(?:{alts})(?!\w)"
                # what a boilerplate phrase drags along: "of"/"showing" after it at the start,
                # a call to action's "to download ..." / "for more ..." up to the sentence end.
                rf"(?:\s+(?:of|showing)\b|\s+(?:to|for)\b[^.!?\n]*)?"
                rf"\s*[:\-\u2013\u2014|.!]*"
            )
        return self._boilerplate_re


Rule = Callable[[str, RuleOptions], "tuple[str, bool]"]
RULES: dict[str, Rule] = {}


def rule(name: str):
    """Register a rule function under ``name``."""

    def deco(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return deco


# -- html ------------------------------------------------------------------------------------------
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BLOCK_TAGS = "br|p|div|li|ul|ol|tr|td|th|h[1-6]|img|hr|table|section|article|figure|figcaption|blockquote|iframe"
_SCRIPT = re.compile(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>")
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)\b[^<>]*/?>|<!--.*?-->", re.DOTALL)
_BLOCK = re.compile(rf"(?i)^(?:{_BLOCK_TAGS})$")


@rule("html")
def html_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Decode HTML entities (``&amp;``, ``&#39;``, also double-escaped ``&amp;quot;``), drop tags
    (``<p>``, ``<br/>``, ``<img ... onerror=...>``) and ``<script>``/``<style>`` blocks."""
    if "&" not in text and "<" not in text:
        return text, False
    new = text
    for _ in range(3):  # "&amp;quot;" -> "&quot;" -> '"'
        decoded = _ENTITY.sub(lambda m: html.unescape(m.group()), new)
        if decoded == new:
            break
        new = decoded
    if "<" in new:
        new = _SCRIPT.sub(" ", new)
        new = _TAG.sub(lambda m: " " if (m.group(1) is None or _BLOCK.match(m.group(1))) else "", new)
    if new == text:
        return text, False
    return _tidy(new), True


# -- mojibake --------------------------------------------------------------------------------------
# UTF-8 "”" (E2 80 9D) read as cp1252 leaves "â€" and an undefined byte, often replaced by U+FFFD;
# it is the only common typographic character that ends that way, so the loss can be undone.
_LOSSY_RDQUO = re.compile("\u00e2\u20ac[\ufffd\x9d]")
_LOST_CLOSING = re.compile("(\u201c[^\u201d\ufffd]{0,200})\ufffd")


@rule("mojibake")
def mojibake_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Undo text decoded with the wrong codec (``cafÃ©`` -> ``café``, ``â€™`` -> ``’``) with ftfy."""
    if text.isascii():
        return text, False
    ftfy = require("ftfy", "captions", "the caption_repair 'mojibake' rule")
    new = text
    for _ in range(3):  # doubly garbled text may show the lossy "”" only after one round
        fixed = ftfy.fix_encoding(_LOSSY_RDQUO.sub("\u00e2\u20ac\x9d", new))
        if fixed == new:
            break
        new = fixed
    # ftfy marks what it could not recover with U+FFFD; after an opening "“" that was the closing "”"
    new = _LOST_CLOSING.sub("\\1\u201d", new)
    if new == text:
        return text, False
    return new, True


# -- whitespace and control characters -------------------------------------------------------------
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ufffc]")
_ODD_SPACE = re.compile("[\x0b\x0c\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_INNER_BREAK = re.compile(r"\S[\t\r\n]+\s*\S")


@rule("whitespace")
def whitespace_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Remove control and invisible characters (zero-width spaces, soft hyphens, BOM, direction
    marks), turn non-breaking and other odd spaces, tabs and line breaks inside the text into single
    spaces. Ordinary double spaces or edge whitespace alone do not count as a change."""
    if text.isascii():
        if not _INVISIBLE.search(text) and not _INNER_BREAK.search(text):
            return text, False
    elif not (_INVISIBLE.search(text) or _ODD_SPACE.search(text) or _INNER_BREAK.search(text)):
        return text, False
    return normalize_whitespace(_ODD_SPACE.sub(" ", _INVISIBLE.sub("", text))), True


# -- urls and e-mail addresses ---------------------------------------------------------------------
_LEAD_IN = r"(?:\b(?:via|source|see|visit|more(?:\s+info)?\s+at|more\s+on|available\s+at|contact(?:\s+us)?|e-?mail(?:\s+us)?|mail|from|at|on|@)\s*:?\s*)?"
_URL = re.compile(
    rf"(?i)[(\[]?{_LEAD_IN}"
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'()\[\]]*[^\s<>\"'()\[\].,;:!?]"
    r"[)\]]?"
)
_EMAIL = re.compile(rf"(?i)[(\[]?{_LEAD_IN}\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{{2,}}\b[)\]]?")


@rule("urls")
def urls_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Remove URLs (``http(s)://``, ``www.``) and e-mail addresses, with a lead-in like ``via`` or
    ``source:`` right before them."""
    if "://" not in text and "www." not in text.lower() and "@" not in text:
        return text, False
    new = _URL.sub(" ", text)
    new = _EMAIL.sub(" ", new)
    if new == text:
        return text, False
    return _tidy(new), True


# -- file and camera names -------------------------------------------------------------------------
_EXT = r"(?:jpe?g|png|gif|bmp|tiff?|webp|heic|heif|avif|cr2|nef|arw|dng|raw)"
_CAMERA = r"(?:IMG|DSC|DSCN|DSCF|DSCI|GOPR|GP|MVIMG|PXL|VID|SAM|WP|PANO|PICT|CIMG|IMAG|SDC|HPIM|KIF|DCIM|P)"
_FILENAME_TOKEN = re.compile(
    rf"(?i)(?<![\w/\\-])(?:[\w\-]+(?:[ _]?\(\d+\))?(?:\.[\w\-]+)*\.{_EXT}(?![\w.])"
    rf"|{_CAMERA}[_\-]?\d{{4,}}(?:[_\-]\d+)*(?:\.{_EXT})?(?![\w.]))"
)
_FILENAME_HINT = re.compile(rf"(?i)\.{_EXT}\b|\d{{4,}}")
# A whole caption that is a file name with spaces ("image (3).png", "Screenshot 2020-01-01 at 10.00.00.png")
# or a placeholder ("untitled", "image 3").
_FILENAME_ONLY = re.compile(
    rf"(?i)^(?:[\w\-. ()\[\],]{{0,80}}\.{_EXT}"
    rf"|(?:untitled|image|img|photo|picture|pic|scan|screenshot|screen shot|snapshot|file|no caption|"
    rf"no description|caption|null|none|n/?a)(?:[ _\-]*\(?\d*\)?)?)$"
)


@rule("filenames")
def filenames_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Remove file and camera names (``IMG_2031.JPG``, ``DSC01234``, ``image (3).png``); a caption
    that is only such a name (or a placeholder like ``untitled``) becomes empty."""
    stripped = text.strip()
    if len(stripped) > 24 and not _FILENAME_HINT.search(text):
        return text, False
    if _FILENAME_ONLY.match(stripped) and not (" " in stripped and not _looks_like_filename_words(stripped)):
        return "", True
    new = _FILENAME_TOKEN.sub(" ", text)
    if new == text:
        return text, False
    return _tidy(new), True


def _looks_like_filename_words(text: str) -> bool:
    """A spaced caption ending in an image extension is a file name only if it reads like one:
    a generic first word, or few words with digits ("image (3).png", "Screenshot 2020-01-01 at 10.00.png")."""
    first = text.split()[0].lower().rstrip("_-")
    if first in {"image", "img", "photo", "picture", "pic", "scan", "screenshot", "screen", "snapshot", "untitled",
                 "file", "copy", "dsc", "dscn"}:
        return True
    return bool(re.search(r"\d", text)) and len(text.split()) <= 3


# -- boilerplate -----------------------------------------------------------------------------------
@rule("boilerplate")
def boilerplate_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Remove boilerplate phrases (``Stock photo:``, ``Click here to download.``, ``Image may
    contain:``); the list is ``boilerplate:`` in YAML."""
    rx = opts.boilerplate_re()
    if rx is None:
        return text, False
    lower = text.lower()
    if not any(w in lower for w in opts.first_words()):
        return text, False
    new = rx.sub(" ", text)
    if new == text:
        return text, False
    return _tidy(new), True


# -- truncation markers ----------------------------------------------------------------------------
_TRUNC_MARKERS = tuple(sorted((
    "...", "\u2026", "[...]", "[\u2026]", "(...)", "(\u2026)", "(more)", "[more]", "(truncated)", "[truncated]",
    "(cont)", "(cont.)", "(continued)", "(cont'd)", "read more", "see more", "show more", "view more",
    "more...", "more\u2026",
), key=len, reverse=True))
_TRUNC_BY_LAST: dict[str, tuple[str, ...]] = {}
for _m in _TRUNC_MARKERS:
    _TRUNC_BY_LAST[_m[-1]] = _TRUNC_BY_LAST.get(_m[-1], ()) + (_m,)


@rule("truncation")
def truncation_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Remove trailing truncation markers: ``...``, ``…``, ``[...]``, ``(more)``, ``Read more``."""
    t = text.rstrip()
    if not t or (t[-1] not in ".\u2026)]" and not t[-4:].lower() == "more"):
        return text, False
    changed = False
    while t:
        lower = t[-16:].lower()
        for m in _TRUNC_BY_LAST.get(lower[-1], ()):
            if lower.endswith(m) and (not m[0].isalpha() or len(t) == len(m) or not t[-len(m) - 1].isalnum()):
                t = t[: -len(m)].rstrip()
                changed = True
                break
        else:
            break
    if not changed:
        return text, False
    return _tidy(t), True


# -- repeats ---------------------------------------------------------------------------------------
#: Words people do double on purpose ("very very", "had had", "bye bye").
LEGIT_DOUBLES = frozenset({
    "very", "so", "really", "many", "much", "more", "had", "that", "is", "ha", "haha", "bye", "no", "yes",
    "knock", "chop", "tick", "tock", "choo", "bang", "boom", "la", "na", "yum", "go", "there", "now", "again",
    "far", "round", "over", "out", "on", "and", "little", "big", "long", "fast", "slow", "mahi", "bora", "tutu",
    "cous", "dum", "pom", "beep", "honk", "woof", "meow", "hush", "night",
})
_REPEATED_WORD = re.compile(r"(?i)\b([^\W\d_]+)(?:\s+\1\b)+")
_REPEATED_PHRASE = re.compile(r"(?i)\b([^\W\d_]+(?:\s+[^\W\d_]+){1,3})(?:\s+\1\b)+")
# "!!", ",,", ", ,", "....": a mark repeated (spaces between allowed for , ; :). Two periods are left
# alone: people type ".." for an ellipsis (3 of the 795 COCO-mini human captions end so).
_PUNCT_RUN = re.compile(r"([!?])\1+|([,;:])(?:\s*\2)+|\.{4,}")
_PUNCT_HINT = re.compile(r"[!?,;:]\s*[!?,;:]|\.{4}")  # cheap superset of _PUNCT_RUN, to decide whether to look
_TAIL_PUNCT = re.compile(r"([.!?])(?:\s+[!?.]+|[!?]{2,})\s*$")
_WORD_PUNCT = ".,;:!?\"')]"
_DROP_WORD_PUNCT = str.maketrans("", "", _WORD_PUNCT)


def _has_repeated_phrase(words: list[str]) -> bool:
    """Two to four words written twice in a row (``on the table on the table``), one of 3+ letters."""
    bigrams = list(zip(words, words[1:]))
    if len(set(bigrams)) == len(bigrams):  # cheap: every repeated phrase repeats a pair of words
        return False
    for n in (2, 3, 4):
        for i in range(len(words) - 2 * n + 1):
            if words[i:i + n] == words[i + n:i + 2 * n] and any(len(w) > 2 and w.isalpha() for w in words[i:i + n]):
                return True
    return False


def _phrase_once(m: re.Match) -> str:
    words = m.group(1).lower().split()
    if all(w in LEGIT_DOUBLES for w in words) or not any(len(w) > 2 for w in words):
        return m.group(0)
    return m.group(1)


def _doubled(text: str) -> str | None:
    """``X X`` (the whole caption twice, with whitespace between) -> ``X``; else None."""
    t = text.strip()
    n = len(t)
    for gap in (1, 0, 2, 3):
        k = n - gap
        if k < 16 or k % 2:
            continue
        half = k // 2
        a, mid, b = t[:half], t[half:half + gap], t[half + gap:]
        if a == b and (not mid or mid.isspace()):
            return a
    return None


@rule("repeats")
def repeats_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Collapse repeated words (``the the``, except doubles like ``very very``), repeated phrases of
    2-4 words (``on the table on the table``), punctuation runs (``!!!!``, ``,,``, ``, ,``, ``.....``;
    not ``..``) and a caption written twice in a row."""
    words = text.lower().split()
    has_double = any((a == b or a == b.rstrip(_WORD_PUNCT)) and a.isalpha() for a, b in zip(words, words[1:]))
    has_phrase = len(words) >= 4 and len(set(words)) < len(words) and _has_repeated_phrase(
        text.lower().translate(_DROP_WORD_PUNCT).split())
    if (not has_double and not has_phrase and not _PUNCT_HINT.search(text) and not _TAIL_PUNCT.search(text)
            and _doubled(text) is None):
        return text, False
    new = text
    whole = _doubled(new)
    if whole is not None:
        new = whole
    if has_phrase:
        new = _REPEATED_PHRASE.sub(_phrase_once, new)
    new = _REPEATED_WORD.sub(lambda m: m.group(0) if m.group(1).lower() in LEGIT_DOUBLES else m.group(1), new)
    new = _TAIL_PUNCT.sub(r"\1", new)
    new = _PUNCT_RUN.sub(lambda m: m.group(0)[0], new)
    if new == text:
        return text, False
    return _tidy(new), True


# -- wrapping quotes ---------------------------------------------------------------------------------
_QUOTE_PAIRS = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201c", "\u00ab": "\u00bb", "'": "'", "\u2018": "\u2019"}


@rule("quotes")
def quotes_rule(text: str, opts: RuleOptions) -> tuple[str, bool]:
    """Unwrap a caption that is wholly inside one pair of quotes (``"A dog on a beach."``)."""
    t = text.strip()
    if len(t) < 3 or t[0] not in _QUOTE_PAIRS:
        return text, False
    close = _QUOTE_PAIRS[t[0]]
    tail = ""
    if t[-1] in ".!?" and len(t) > 3 and t[-2] == close:
        t, tail = t[:-1], t[-1]
    if t[-1] != close:
        return text, False
    inner = t[1:-1]
    if t[0] in inner or close in inner:
        return text, False  # "a" and "b": not one quoted caption
    if tail and inner[-1:] in ".!?":
        tail = ""
    return normalize_whitespace(inner + tail), True


#: The order rules run in: decode first (html, mojibake), then clean characters, then remove things.
RULE_ORDER = ("html", "mojibake", "whitespace", "urls", "filenames", "boilerplate", "repeats", "truncation", "quotes")
assert set(RULE_ORDER) == set(RULES), "every rule needs a place in RULE_ORDER"


@dataclass
class RuleResult:
    """The cleaned text (``text`` is ``original`` when no rule fired) and the rules that changed it."""

    original: str
    text: str
    applied: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    @property
    def junk(self) -> bool:
        """Nothing caption-like left: no letter at all."""
        return not any(ch.isalpha() for ch in self.text)


class RuleSet:
    """The chosen rules with their options; :meth:`apply` cleans one caption.

    >>> RuleSet().apply("A dog &amp; a cat.  http://x.example/p").text
    'A dog & a cat.'
    """

    def __init__(self, rules: Iterable[str] | None = None, *, boilerplate: Sequence[str] = DEFAULT_BOILERPLATE):
        chosen = set(RULE_ORDER if rules is None else rules)
        unknown = chosen - set(RULES)
        if unknown:
            raise ValueError(f"unknown caption rule(s) {sorted(unknown)}; known: {', '.join(RULE_ORDER)}")
        self.rules = [r for r in RULE_ORDER if r in chosen]
        self.opts = RuleOptions(boilerplate=tuple(boilerplate))

    def apply(self, text: str) -> RuleResult:
        applied: list[str] = []
        cur = text
        for name in self.rules:
            new, changed = RULES[name](cur, self.opts)
            if changed and new != cur:
                applied.append(name)
                cur = new
        if applied:
            cur = normalize_whitespace(cur)
            if cur == text:
                applied = []
        return RuleResult(text, cur, applied)
