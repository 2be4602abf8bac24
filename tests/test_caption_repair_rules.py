"""Caption repair rules: each kind of damage is undone exactly, clean captions are left alone."""

from __future__ import annotations

import json

import pytest

from curate.captions.choose import Candidate, choose
from curate.captions.rules import RULE_ORDER, RULES, RuleSet

RS = RuleSet()


@pytest.mark.parametrize("broken, fixed, rule", [
    ("A dog &amp; a cat on a sofa.", "A dog & a cat on a sofa.", "html"),
    ("A man said &amp;quot;cheese&amp;quot; to the camera", 'A man said "cheese" to the camera', "html"),
    ("<p>A man talking on a phone.</p>", "A man talking on a phone.", "html"),
    ("A bike under a light. <img src=x onerror=alert(1)>", "A bike under a light.", "html"),
    ("A <b>red</b> bus<br/>on the street", "A red bus on the street", "html"),
    ("A caf\u00c3\u00a9 with people sitting outside", "A caf\u00e9 with people sitting outside", "mojibake"),
    ("The dog\u00e2\u20ac\u2122s ball on the grass", "The dog\u2019s ball on the grass", "mojibake"),
    ("A dog\u200b on the gra\u00adss", "A dog on the grass", "whitespace"),
    ("A dog\x00 on the\x1b grass", "A dog on the grass", "whitespace"),
    ("A dog on\tthe\ngrass", "A dog on the grass", "whitespace"),
    ("A dog\u00a0on the grass", "A dog on the grass", "whitespace"),
    ("A man on a skateboard. https://example.com/photo/12345", "A man on a skateboard.", "urls"),
    ("A man on a skateboard (via www.flickr.com/p/abc).", "A man on a skateboard.", "urls"),
    ("Contact: jane.doe@example.com A cat on a mat.", "A cat on a mat.", "urls"),
    ("IMG_2031.JPG A dog on the grass", "A dog on the grass", "filenames"),
    ("A dog on the grass (DSC01234.jpg)", "A dog on the grass", "filenames"),
    ("Stock photo: Two men in the woods. Click here to download.", "Two men in the woods.", "boilerplate"),
    ("Image may contain: a dog on a beach", "a dog on a beach", "boilerplate"),
    ("A dog on a beach - stock photo", "A dog on a beach", "boilerplate"),
    ("A man riding a horse on the beach...", "A man riding a horse on the beach", "truncation"),
    ("A man riding a horse on the beach. Read more", "A man riding a horse on the beach.", "truncation"),
    ("A man riding a horse on the beach [...]", "A man riding a horse on the beach", "truncation"),
    ("A man riding a horse (more)", "A man riding a horse", "truncation"),
    ("the the dog is very very happy", "the dog is very very happy", "repeats"),
    ("A plate of food!!!!!", "A plate of food!", "repeats"),
    ("Pizza on a plate. !!!!!!", "Pizza on a plate.", "repeats"),
    ("A dog on the grass. A dog on the grass.", "A dog on the grass.", "repeats"),
    ('"A dog on the grass."', "A dog on the grass.", "quotes"),
    ("\u201cA dog on the grass\u201d.", "A dog on the grass.", "quotes"),
])
def test_each_rule_restores_the_text_and_reports_itself(broken, fixed, rule):
    res = RS.apply(broken)
    assert res.text == fixed
    assert rule in res.applied
    assert not res.junk


@pytest.mark.parametrize("name_only", ["IMG_2031.JPG", "DSC01234", "image (3).png", "P1010234.JPG", "untitled",
                                       "Screenshot 2020-01-01 at 10.00.00.png", "DSCN0042.jpg", "photo.jpeg",
                                       "Stock photo", "https://example.com/x.jpg", "<br><br>"])
def test_captions_that_are_only_a_name_or_noise_become_junk(name_only):
    res = RS.apply(name_only)
    assert res.changed and res.junk and res.text == ""


@pytest.mark.parametrize("clean", [
    "A woman in a kitchen at the sink holding a knife. ",   # edge whitespace is kept byte for byte
    "some outdoor tables sitting next to  some umbrellas ",  # so are double spaces
    "A stuffed bear sits next to a tea cup full of tea..",
    "The sign reads \"stop\" and \"go\".",
    "A very very large elephant near a tree.",
    "A Canon EOS camera on a table next to a laptop.",
    "A man holds a sign that says www at a rally.",
    "AT&T store front on a busy street",
    "A kitchen with a 3 < 4 sign.",
    "A caf\u00e9 with people sitting outside",
    "A bowl of food that looks like worms and some greens.\n",
])
def test_clean_captions_are_left_byte_identical(clean):
    res = RS.apply(clean)
    assert res.text == clean and res.applied == []


def test_rules_run_in_canonical_order_and_only_chosen_ones():
    assert list(RULES) and set(RULE_ORDER) == set(RULES)
    only_html = RuleSet(["html"])
    res = only_html.apply("A dog &amp; a cat. http://x.example")
    assert res.text == "A dog & a cat. http://x.example" and res.applied == ["html"]
    # listed out of order: still decoded before urls are removed
    res = RuleSet(["urls", "html"]).apply("A dog &lt;3 a cat http&#58;//x.example/a")
    assert res.applied == ["html", "urls"] and res.text == "A dog <3 a cat"
    with pytest.raises(ValueError, match="unknown caption rule"):
        RuleSet(["htlm"])


def test_boilerplate_list_is_configurable():
    rs = RuleSet(["boilerplate"], boilerplate=["as seen on tv"])
    assert rs.apply("A blender, as seen on TV!").text == "A blender"
    assert rs.apply("Stock photo: a blender").applied == []


def test_coco_human_captions_are_almost_never_changed(shared_data):
    caps = []
    for split in ("train", "val"):
        doc = json.loads((shared_data / "coco-mini" / "annotations" / f"captions_{split}2017.json").read_text())
        caps += [a["caption"] for a in doc["annotations"]]
    changed = [c for c in caps if RS.apply(c).text != c]
    assert len(caps) == 795
    assert len(changed) / len(caps) < 0.005, changed


def test_choose_needs_min_gain_and_falls_back_to_siblings():
    inc = Candidate("rules", "a dog", 0.20)
    assert choose([inc, Candidate("sibling", "a dog on grass", 0.215)], min_gain=0.02) == 0
    assert choose([inc, Candidate("sibling", "a dog on grass", 0.23),
                   Candidate("generated", "a brown dog", 0.25)], min_gain=0.02) == 2
    # without scores the incumbent stays, unless nothing is left of it
    assert choose([Candidate("original", "a dog"), Candidate("sibling", "a cat")], min_gain=0.02) == 0
    assert choose([Candidate("rules", ""), Candidate("sibling", "a cat"), Candidate("sibling", "a dog")],
                  min_gain=0.02) == 1
    assert choose([Candidate("rules", "", 0.3), Candidate("sibling", "a cat", 0.1), Candidate("sibling", "a dog", 0.2)],
                  min_gain=0.5) == 2
    assert choose([Candidate("rules", "")], min_gain=0.0) == 0
