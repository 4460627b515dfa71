"""Tokenisation: CAML's rule, the pinned regular-expression engine, and the fast path."""
from __future__ import annotations

import random

import pytest

from mcanb import text


def test_caml_rule_drops_numeric_tokens_and_lowercases():
    s = "Metoprolol 25 mg PO BID, 250mg [**2151-7-16**] Pt's BP 120/80"
    assert text.tokenize(s) == ["metoprolol", "mg", "po", "bid", "250mg", "pt", "s", "bp"]


def test_alpha_rule_keeps_only_tokens_with_a_letter():
    assert text.tokenize("abc 12 a1 _1 ²", token_rule="alpha") == ["abc", "a1"]


def test_engines_differ_on_superscripts_and_combining_accents():
    # Python's re: \w matches '²' (str.isalnum) but not a combining accent (U+0301) -> the word splits.
    s = "area 3 m² cafe\u0301"
    assert text.tokenize(s, engine="re") == ["area", "m²", "cafe"]
    # the third-party regex module (nltk >= 3.10.3): '²' is not \w, the combining mark is.
    assert text.tokenize(s, engine="regex") == ["area", "m", "cafe\u0301"]


def test_which_engine_nltk_runs():
    """nltk's RegexpTokenizer matches one of our engines; CAML ran nltk on Python's re."""
    nltk = pytest.importorskip("nltk")
    from nltk.tokenize import RegexpTokenizer

    s = "area 3 m² cafe\u0301"
    got = [t.lower() for t in RegexpTokenizer(r"\w+").tokenize(s) if not t.isnumeric()]
    version = tuple(int(x) for x in nltk.__version__.split(".")[:3])
    expected_engine = "regex" if version >= (3, 10, 3) else "re"
    assert got == text.tokenize(s, engine=expected_engine)


def test_fast_path_equals_token_by_token_path():
    rng = random.Random(0)
    alphabet = ["a", "B", "7", "0", " ", "\n", ",", "_", "-", "mg", "25", "[**", "**]", "é", "²", "Σ", "\t"]
    for _ in range(2000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for rule in text.TOKEN_RULES:
            assert text.tokenize_joined(s, rule) == " ".join(text.tokenize(s, rule)), repr(s)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="token_rule"):
        text.tokenize("x", token_rule="nope")
    with pytest.raises(ValueError, match="engine"):
        text.tokenize("x", engine="pcre")
    assert text.truncate(list("abc"), 2) == ["a", "b"]
