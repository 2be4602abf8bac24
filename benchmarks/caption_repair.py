"""Caption repair benchmark on the human captions of ../shared/data/coco-mini.

Builds a corrupted copy of every human caption for each kind of damage the rules target (see
CORRUPTIONS and docs/benchmarks/caption_repair.md), then measures

* restoration: the share of corrupted captions the rules turn back into the human text exactly
  (strict: byte for byte; normalised: after collapsing whitespace and stripping the ends, since the
  rules normalise whitespace whenever they change a caption and 13% of COCO captions carry stray spaces);
* false repairs: the share of the untouched human captions the rules change at all (byte for byte);
* throughput of the rules (captions/s, one process) on 1M captions (90% clean, 10% corrupted),
  and of the stage's ``process`` on the same captions as a pyarrow batch.

The obvious alternative, ``ftfy.fix_text`` on every caption, is measured in the same run.

    nice -n 10 /work/venv/bin/python benchmarks/caption_repair.py [--n 1000000] [--seed 0] [--baseline COMMIT]

The second table measures repeated words and punctuation one damage kind at a time (REPEAT_CORRUPTIONS),
optionally against the rules of an older commit (``--baseline``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini"

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curate.captions.rules import LEGIT_DOUBLES, RuleSet, normalize_whitespace  # noqa: E402


def load_captions() -> list[tuple[int, str]]:
    out = []
    for split in ("train", "val"):
        doc = json.loads((DATA / "annotations" / f"captions_{split}2017.json").read_text(encoding="utf-8"))
        out += [(a["image_id"], a["caption"]) for a in doc["annotations"]]
    return out


# -- corruptions: (corrupted, target) from a human caption ---------------------------------------------
def _words(c: str) -> list[str]:
    return c.split(" ")


def c_html_entities(c: str, rng: random.Random) -> tuple[str, str]:
    """Escape &, <, >, quotes; one space becomes &nbsp;; a third double-escaped (&amp;amp;)."""
    w = _words(c)
    i = rng.randrange(1, len(w)) if len(w) > 1 else 0
    esc = [html.escape(x, quote=True) for x in w]
    s = " ".join(esc[:i]) + ("&nbsp;" if i else "") + " ".join(esc[i:]) if i else " ".join(esc)
    if rng.random() < 1 / 3:
        s = s.replace("&", "&amp;")
    return s, c


def c_html_tags(c: str, rng: random.Random) -> tuple[str, str]:
    """Wrap in <p>, insert <br/>, bold a word, or append an <img onerror> injection."""
    k = rng.randrange(4)
    w = _words(c)
    if k == 0:
        return f"<p>{c}</p>", c
    if k == 1 and len(w) > 2:
        i = rng.randrange(1, len(w))
        return " ".join(w[:i]) + "<br/>" + " ".join(w[i:]), c
    if k == 2:
        i = rng.randrange(len(w))
        w2 = list(w)
        w2[i] = f"<b>{w[i]}</b>"
        return " ".join(w2), c
    return c + ' <img src=x onerror="alert(1)">', c


def _non_ascii_target(c: str, rng: random.Random) -> str:
    """The caption with typographic characters, so that there is something to garble."""
    if "'" in c:
        return c.replace("'", "\u2019")
    if ", " in c:
        return c.replace(", ", " \u2014 ", 1)
    w = _words(c)
    cands = [i for i, x in enumerate(w) if x.isalpha() and len(x) > 3]
    i = rng.choice(cands) if cands else len(w) - 1
    w = list(w)
    w[i] = f"\u201c{w[i]}\u201d"
    return " ".join(w)


def c_mojibake(c: str, rng: random.Random) -> tuple[str, str]:
    """UTF-8 decoded as cp1252 (lossy bytes -> U+FFFD) 50%, as latin-1 25%, twice as cp1252 25%."""
    target = _non_ascii_target(c, rng)
    r = rng.random()
    raw = target.encode("utf-8")
    if r < 0.5:
        s = raw.decode("cp1252", errors="replace")
    elif r < 0.75:
        s = raw.decode("latin-1")
    else:
        s = raw.decode("cp1252", errors="replace").encode("utf-8").decode("cp1252", errors="replace")
    return s, target


def c_invisible(c: str, rng: random.Random) -> tuple[str, str]:
    """Zero-width space or soft hyphen inside a word, NUL/ESC, NBSP, a tab or line break between words."""
    w = _words(c)
    i = rng.randrange(len(w))
    x = w[i]
    k = rng.randrange(5)
    if k == 0 and len(x) > 2:
        w[i] = x[:1] + "\u200b" + x[1:]
    elif k == 1 and len(x) > 3:
        w[i] = x[:2] + "\u00ad" + x[2:]
    elif k == 2:
        w[i] = x + rng.choice(["\x00", "\x1b", "\x7f"])
    elif k == 3 and len(w) > 1:
        j = rng.randrange(1, len(w))
        return " ".join(w[:j]) + "\u00a0" + " ".join(w[j:]), c
    else:
        j = rng.randrange(1, len(w)) if len(w) > 1 else 1
        return " ".join(w[:j]) + rng.choice(["\t", "\n", "\r\n"]) + " ".join(w[j:]), c
    return " ".join(w), c


_URL_TEMPLATES = ("{c} https://example.com/photo/{n}", "{c} (via www.flickr.com/photos/{n})",
                  "Contact: user{n}@example.com {c}", "{c} Source: http://img.example.org/{n}.jpg?size=large",
                  "http://t.co/{n} {c}")
_BOILERPLATE_TEMPLATES = ("Stock photo: {c}", "Image may contain: {c}", "{c} - stock photo",
                          "{c} Click here to download.", "{c} | Royalty free")


def c_url(c: str, rng: random.Random) -> tuple[str, str]:
    """A URL or e-mail address appended or prepended, with or without a lead-in."""
    n = rng.randrange(10**6)
    return rng.choice(_URL_TEMPLATES).format(c=c, n=n), c


def c_filename_token(c: str, rng: random.Random) -> tuple[str, str]:
    """A camera file name before or after the caption."""
    n = rng.randrange(1000, 99999)
    name = rng.choice([f"IMG_{n}.JPG", f"DSC{n:05d}.jpg", f"P10{n:05d}.JPG", f"DSCN{n:04d}", f"image ({n % 9 + 1}).png"])
    return (f"{name} {c}", c) if rng.random() < 0.5 else (f"{c} ({name})", c)


def c_boilerplate(c: str, rng: random.Random) -> tuple[str, str]:
    """Stock-site phrases before or after the caption."""
    return rng.choice(_BOILERPLATE_TEMPLATES).format(c=c), c


def c_truncation(c: str, rng: random.Random) -> tuple[str, str]:
    """A truncation marker after the (complete) caption."""
    return c + rng.choice(["...", "\u2026", " [...]", " (more)", " Read more", "... see more"]), c


def c_repeats(c: str, rng: random.Random) -> tuple[str, str]:
    """A word doubled (not one of LEGIT_DOUBLES), the final punctuation repeated, or the caption twice."""
    k = rng.randrange(3)
    stripped = c.rstrip()
    if k == 1 and stripped and stripped[-1] in ".!?,":
        return stripped + stripped[-1] * rng.randrange(3, 7), c
    if k == 2:
        return f"{c.strip()} {c.strip()}", c
    w = _words(c)
    cands = [i for i, x in enumerate(w) if x.isalpha() and x.lower() not in LEGIT_DOUBLES]
    if not cands:
        return f"{c.strip()} {c.strip()}", c
    i = rng.choice(cands)
    return " ".join(w[:i + 1] + [w[i]] + w[i + 1:]), c


def c_quotes(c: str, rng: random.Random) -> tuple[str, str]:
    """The whole caption in straight or curly quotes."""
    q = rng.choice([('"', '"'), ("\u201c", "\u201d")])
    return f"{q[0]}{c.strip()}{q[1]}", c


# -- repeated words and punctuation, one kind of damage each (the "repeats" table) -----------------------
def _cands(w: list[str]) -> list[int]:
    return [i for i, x in enumerate(w) if x.isalpha() and x.lower() not in LEGIT_DOUBLES]


def _end_punct(c: str) -> str | None:
    t = c.rstrip()
    return t[-1] if t and t[-1] in ".!?" else None


def r_word_doubled(c: str, rng: random.Random) -> tuple[str, str]:
    """One word (not one people double on purpose) written twice: ``a dog dog on``."""
    w = _words(c)
    cands = _cands(w)
    if not cands:
        return c, c
    i = rng.choice(cands)
    return " ".join(w[:i + 1] + [w[i]] + w[i + 1:]), c


def r_word_tripled(c: str, rng: random.Random) -> tuple[str, str]:
    """One word three times: ``the the the``."""
    w = _words(c)
    cands = _cands(w)
    if not cands:
        return c, c
    i = rng.choice(cands)
    return " ".join(w[:i + 1] + [w[i], w[i]] + w[i + 1:]), c


def r_word_doubled_case(c: str, rng: random.Random) -> tuple[str, str]:
    """The first word doubled with the other case: ``A a man``, ``The the dog``."""
    w = _words(c)
    if not w or not w[0].isalpha() or w[0].lower() in LEGIT_DOUBLES:
        return r_word_doubled(c, rng)
    first = w[0]
    other = first.lower() if first[0].isupper() else first.capitalize()
    return " ".join([first, other] + w[1:]), c


def r_word_doubled_before_punct(c: str, rng: random.Random) -> tuple[str, str]:
    """The word before a comma or the final period doubled: ``on a bench bench.``, ``a dog dog, a cat``."""
    w = _words(c)
    cands = [i for i, x in enumerate(w) if len(x) > 1 and x[-1] in ".,!?" and x[:-1].isalpha()
             and x[:-1].lower() not in LEGIT_DOUBLES]
    if not cands:
        return r_word_doubled(c, rng)
    i = rng.choice(cands)
    return " ".join(w[:i] + [w[i][:-1], w[i]] + w[i + 1:]), c


def r_phrase_doubled(c: str, rng: random.Random) -> tuple[str, str]:
    """Two to four words written twice in a row: ``on the table on the table``."""
    w = _words(c)
    n = rng.randint(2, 4)
    starts = [i for i in range(len(w) - n + 1) if all(x.isalpha() for x in w[i:i + n])
              and any(len(x) > 2 and x.lower() not in LEGIT_DOUBLES for x in w[i:i + n])]
    if not starts:
        return r_word_doubled(c, rng)
    i = rng.choice(starts)
    return " ".join(w[:i + n] + w[i:i + n] + w[i + n:]), c


def r_caption_twice(c: str, rng: random.Random) -> tuple[str, str]:
    """The whole caption written twice."""
    return f"{c.strip()} {c.strip()}", c


def r_end_punct_repeated(c: str, rng: random.Random) -> tuple[str, str]:
    """The final ``!``/``?`` repeated 2-6 times or ``.`` 4-6 times (``..`` is left alone by the rules:
    people type it for an ellipsis; ``...`` is the truncation rule's business). A caption without final
    punctuation gets a period first (in the target too)."""
    p = _end_punct(c)
    t = c.rstrip()
    target = c
    if p is None:
        p = rng.choice(".!?")
        t += p
        target = t
    k = rng.randint(4, 6) if p == "." else rng.randint(2, 6)
    return t + p * (k - 1), target


def r_inner_punct_repeated(c: str, rng: random.Random) -> tuple[str, str]:
    """A comma after a word doubled or tripled, with or without spaces between (``a dog,, a cat``,
    ``a dog, , a cat``); where the caption has no comma one is added after a word (in the target too)."""
    w = _words(c)
    commas = [i for i, x in enumerate(w[:-1]) if x.endswith(",")]
    if commas:
        i = rng.choice(commas)
        base = list(w)
    else:
        inner = [i for i, x in enumerate(w[:-1]) if x.isalpha()]
        if not inner:
            return c, c
        i = rng.choice(inner)
        base = list(w)
        base[i] = w[i] + ","
    target = " ".join(base)
    bad = list(base)
    bad[i] = base[i] + rng.choice([",", ",,", " ,", " , ,"])
    return " ".join(bad), target


def r_legit_double(c: str, rng: random.Random) -> tuple[str, str]:
    """Control: ``very very`` inserted before a word; the rules must leave it (target = the input)."""
    w = _words(c)
    i = rng.randrange(len(w))
    bad = " ".join(w[:i] + ["very", "very"] + w[i:])
    return bad, bad


REPEAT_CORRUPTIONS = {
    "word_doubled": r_word_doubled, "word_tripled": r_word_tripled, "word_doubled_case": r_word_doubled_case,
    "word_doubled_before_punct": r_word_doubled_before_punct, "phrase_doubled": r_phrase_doubled,
    "caption_twice": r_caption_twice, "end_punct_repeated": r_end_punct_repeated,
    "inner_punct_repeated": r_inner_punct_repeated, "legit_double (control)": r_legit_double,
}


CORRUPTIONS = {
    "html_entities": c_html_entities, "html_tags": c_html_tags, "mojibake": c_mojibake,
    "invisible_chars": c_invisible, "url_email": c_url, "filename_token": c_filename_token,
    "boilerplate": c_boilerplate, "truncation_marker": c_truncation, "repeats": c_repeats, "quotes": c_quotes,
}
NAME_ONLY = ["IMG_{n}.JPG", "DSC{n:05d}", "image ({k}).png", "DSCN{n:04d}.jpg", "P10{n:05d}.JPG", "untitled",
             "Screenshot 2021-03-0{k} at 10.1{k}.00.png"]


def corrupt_all(caps: list[str], seed: int) -> dict[str, list[tuple[str, str, str]]]:
    """kind -> [(human, corrupted, target)] with one corrupted copy of every caption per kind."""
    rng = random.Random(seed)
    out = {}
    for kind, fn in CORRUPTIONS.items():
        rows = []
        for c in caps:
            bad, target = fn(c, rng)
            rows.append((c, bad, target))
        out[kind] = rows
    rows = []
    for c in caps:
        n, k = rng.randrange(1000, 99999), rng.randrange(1, 9)
        rows.append((c, rng.choice(NAME_ONLY).format(n=n, k=k), ""))
    out["name_only"] = rows
    return out


def corrupt_repeats(caps: list[str], seed: int) -> dict[str, list[tuple[str, str, str]]]:
    """kind -> [(human, corrupted, target)] for the repeated-words-and-punctuation kinds."""
    rng = random.Random(seed + 100)
    return {kind: [(c, *fn(c, rng)) for c in caps] for kind, fn in REPEAT_CORRUPTIONS.items()}


def load_baseline_rules(commit: str):
    """A RuleSet from curate/captions/rules.py as of ``commit`` (for before/after figures)."""
    import importlib.util
    import subprocess
    import tempfile

    src = subprocess.run(["git", "show", f"{commit}:curate/captions/rules.py"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    with tempfile.NamedTemporaryFile("w", suffix="_rules.py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("baseline_rules", f.name)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["baseline_rules"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod.RuleSet()


def evaluate(fix, corrupted: dict, caps: list[str]) -> dict:
    res = {}
    for kind, rows in corrupted.items():
        strict = norm = touched = 0
        for human, bad, target in rows:
            got = fix(bad)
            touched += got != bad
            strict += got == target
            norm += normalize_whitespace(got) == normalize_whitespace(target)
        res[kind] = {"n": len(rows), "changed": touched / len(rows), "restored_strict": strict / len(rows),
                     "restored": norm / len(rows)}
    changed = [c for c in caps if fix(c) != c]
    res["_false_repairs"] = {"n": len(caps), "changed": len(changed), "share": len(changed) / len(caps),
                             "examples": changed[:10]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="captions for the throughput run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write all figures to this JSON file")
    ap.add_argument("--baseline", metavar="COMMIT",
                    help="also measure the repeats table with curate/captions/rules.py as of this git commit")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"coco-mini not found at {DATA}")
    import ftfy
    import pyarrow as pa

    from curate.stages.caption_repair import CaptionRepair, CaptionRepairParams

    pairs = load_captions()
    caps = [c for _, c in pairs]
    corrupted = corrupt_all(caps, args.seed)
    rs = RuleSet()

    def rules_fix(t: str) -> str:
        return rs.apply(t).text

    results = {"rules": evaluate(rules_fix, corrupted, caps), "ftfy.fix_text": evaluate(ftfy.fix_text, corrupted, caps)}

    print(f"{len(caps)} human captions from {DATA}; one corrupted copy per caption and kind (seed {args.seed})\n")
    print(f"{'kind':<18} {'rules: restored':>15} {'(strict)':>9} {'changed':>8}   {'ftfy.fix_text: restored':>23} {'changed':>8}")
    for kind in corrupted:
        r, f = results["rules"][kind], results["ftfy.fix_text"][kind]
        if kind == "name_only":
            print(f"{kind:<18} {'junk: ' + format(r['restored'], '.1%'):>15} {'':>9} {r['changed']:>8.1%}   "
                  f"{'junk: ' + format(f['restored'], '.1%'):>23} {f['changed']:>8.1%}")
            continue
        print(f"{kind:<18} {r['restored']:>15.1%} {r['restored_strict']:>9.1%} {r['changed']:>8.1%}   "
              f"{f['restored']:>23.1%} {f['changed']:>8.1%}")
    kinds = [k for k in corrupted if k != "name_only"]
    overall = sum(results["rules"][k]["restored"] for k in kinds) / len(kinds)
    overall_f = sum(results["ftfy.fix_text"][k]["restored"] for k in kinds) / len(kinds)
    print(f"{'all rule kinds':<18} {overall:>15.1%} {'':>9} {'':>8}   {overall_f:>23.1%}")
    fr, ff = results["rules"]["_false_repairs"], results["ftfy.fix_text"]["_false_repairs"]
    print(f"\nfalse repairs on the untouched human captions: rules {fr['changed']}/{fr['n']} = {fr['share']:.2%}; "
          f"ftfy.fix_text {ff['changed']}/{ff['n']} = {ff['share']:.2%}")
    print(f"  rules changed: {fr['examples']}")

    # repeated words and punctuation, one kind of damage each; against the rules of an older commit
    repeats = corrupt_repeats(caps, args.seed)
    results["repeats"] = {"rules": evaluate(rules_fix, repeats, caps)}
    baseline = load_baseline_rules(args.baseline) if args.baseline else None
    if baseline is not None:
        results["repeats"][f"rules@{args.baseline}"] = evaluate(lambda t: baseline.apply(t).text, repeats, caps)
    cols = list(results["repeats"])
    print(f"\nrepeated words and punctuation ({len(caps)} corrupted captions per kind, seed {args.seed}); restored:")
    print(f"{'kind':<28} " + " ".join(f"{c:>22}" for c in cols))
    for kind in repeats:
        print(f"{kind:<28} " + " ".join(f"{results['repeats'][c][kind]['restored']:>22.1%}" for c in cols))
    print(f"{'false repairs (human)':<28} " + " ".join(
        f"{results['repeats'][c]['_false_repairs']['changed']:>18}/{len(caps)}" for c in cols))

    # throughput on args.n captions: 90% untouched human captions, 10% corrupted (all kinds evenly)
    rng = random.Random(args.seed + 1)
    bad = [b for rows in corrupted.values() for _, b, _ in rows]
    texts = [rng.choice(bad) if rng.random() < 0.1 else rng.choice(caps) for _ in range(args.n)]
    stage = CaptionRepair(CaptionRepairParams(candidates=["rules"]))
    # the three are timed on the same 1k chunks in turn, so that load from other jobs on a shared
    # machine hits them alike and the ratios stay fair
    times = {"rules": 0.0, "stage": 0.0, "ftfy": 0.0}
    for start in range(0, len(texts), 1000):  # 1000 = the runner's default shard size
        chunk = texts[start:start + 1000]
        t0 = time.perf_counter()
        for t in chunk:
            rules_fix(t)
        t1 = time.perf_counter()
        stage.process(pa.table({"id": pa.array([str(i) for i in range(len(chunk))]), "text": pa.array(chunk),
                                "meta": pa.nulls(len(chunk), pa.string())}))
        t2 = time.perf_counter()
        for t in chunk:
            ftfy.fix_text(t)
        t3 = time.perf_counter()
        times["rules"] += t1 - t0
        times["stage"] += t2 - t1
        times["ftfy"] += t3 - t2
    tp_rules, tp_stage, tp_ftfy = (len(texts) / times[k] for k in ("rules", "stage", "ftfy"))
    print(f"\nthroughput on {args.n:,} captions (90% clean, 10% corrupted), one process:")
    print(f"  rules (RuleSet.apply)         {tp_rules:>10,.0f} captions/s")
    print(f"  stage process() in 1k batches {tp_stage:>10,.0f} captions/s (with pyarrow in/out, flags, details)")
    print(f"  ftfy.fix_text                 {tp_ftfy:>10,.0f} captions/s   (rules / ftfy = {tp_rules / tp_ftfy:.2f}x)")
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average at the end {load[0]:.1f}, "
          f"python {platform.python_version()}, ftfy {ftfy.__version__}")
    if args.json:
        results["throughput"] = {"n": args.n, "rules": tp_rules, "stage": tp_stage, "ftfy.fix_text": tp_ftfy}
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
