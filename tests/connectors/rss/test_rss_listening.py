"""Keyword listening (caredesk.connectors.listening), shared by the listening providers."""

from __future__ import annotations

import pytest

from caredesk.connectors.listening import KeywordMatcher


def test_whole_words_any_case_in_order_of_appearance():
    m = KeywordMatcher(["Nimbus", "Acme Mobile", "AT&T"])
    assert m.match("Is NIMBUS down? acme mobile is fine, so is at&t") == ("Nimbus", "Acme Mobile", "AT&T")
    assert m.match("nimbus nimbus Nimbus") == ("Nimbus",)
    assert m.match("Nimbusville and nimbuses and xnimbus and nimbus_2") == ()
    assert m.match("") == ()


def test_a_phrase_matches_across_any_whitespace_and_the_longest_keyword_wins():
    m = KeywordMatcher(["Acme", "Acme Mobile"])
    assert m.match("ACME \n\t Mobile outage") == ("Acme Mobile",)
    assert m.match("acme mobiles everywhere") == ("Acme",)  # "Acme Mobile" is not a whole word there


def test_punctuation_counts_as_a_word_edge():
    m = KeywordMatcher(["Nimbus", "@NimbusCare", "#nimbusdown"])
    assert m.match("(nimbus), 'nimbus'. nimbus-partners") == ("Nimbus",)
    assert m.match("hey @nimbuscare #NimbusDown!") == ("@NimbusCare", "#nimbusdown")


def test_an_exclusion_drops_the_whole_text():
    m = KeywordMatcher(["Nimbus"], exclude=["we are hiring", "Nimbus Careers"])
    assert m.match("Nimbus outage in Leeds") == ("Nimbus",)
    assert m.match("Nimbus outage? No: we   are HIRING in Leeds") == ()
    assert m.match("nimbus careers page") == ()
    assert m.excluded("We are hiring") and not m.excluded("we are hiringly")


def test_unicode_keywords_case_folding_and_normal_forms():
    m = KeywordMatcher(["Telefónica", "Straße Net", "ドコモ", "楽天モバイル"])
    assert m.match("TELEFÓNICA caída en Madrid") == ("Telefónica",)
    assert m.match("Telefo\u0301nica (decomposed accent)") == ("Telefónica",)
    assert m.match("STRASSE NET ist langsam") == ("Straße Net",)
    assert m.match("telefonica without the accent") == ()  # accents are part of the name
    # Japanese is written without spaces: a keyword there matches inside the surrounding text.
    assert m.match("NTTドコモの回線で障害、楽天モバイルも") == ("ドコモ", "楽天モバイル")


def test_a_latin_keyword_next_to_unspaced_script_is_still_a_whole_word():
    m = KeywordMatcher(["Vodafone"])
    assert m.match("Vodafoneの回線が遅い") == ("Vodafone",)
    assert m.match("Vodafones") == ()


def test_keywords_are_regex_safe_and_blank_ones_are_ignored():
    m = KeywordMatcher(["a.b", "(x)", "  ", "c++"])
    assert m.match("axb") == ()
    assert m.match("a.b and (x) and c++ rocks") == ("a.b", "(x)", "c++")
    assert KeywordMatcher([]).match("anything") == ()


def test_limits_are_refused_clearly():
    with pytest.raises(ValueError, match="longer than 200"):
        KeywordMatcher(["x" * 201])
