"""Listening rules: keywords as whole words or phrases, exclusions, hashtags, languages, hostile rule input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from caredesk.connectors.listening import KeywordMatcher, ListeningRules


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("My Nimbus fiber is down since noon", ("nimbus fiber",)),
        ("my NIMBUS  fiber\tis down", ("nimbus fiber",)),  # any run of spaces between a phrase's words
        ("nimbus is down, nimbus again", ("Nimbus",)),  # each keyword once
        ("nimbuses and xnimbus are other words", ()),
        ("#NimbusDown for the third time", ("#NimbusDown",)),
        ("@nimbus help", ("Nimbus",)),
        ("TELEFÓNICA sin red", ("Telefónica",)),
        ("ドコモ圏外です", ("ドコモ",)),  # no spaces between Japanese words
        ("ドコモ and nimbus", ("ドコモ", "Nimbus")),  # in order of appearance
        ("nimbus cloud storage is great", ()),  # an exclusion drops the post
        ("", ()),
    ],
)
def test_keywords(text: str, found: tuple[str, ...]) -> None:
    matcher = KeywordMatcher(["Nimbus", "nimbus fiber", "#NimbusDown", "Telefónica", "ドコモ"], ["nimbus cloud"])
    assert matcher.match(text) == found


def test_regex_characters_in_keywords_are_literal() -> None:
    matcher = KeywordMatcher(["c++", "a.b", "(x)"])
    assert matcher.match("i write c++ daily") == ("c++",)
    assert matcher.match("axb") == ()


def test_no_keywords_match_nothing() -> None:
    assert KeywordMatcher([]).match("anything") == ()


def test_rules_from_config() -> None:
    rules = ListeningRules(keywords=["  Nimbus   Fiber "], hashtags=["#NimbusDown"], languages=["EN", "pt-BR"])
    assert rules.keywords == ("Nimbus Fiber",) and rules.hashtags == ("NimbusDown",)
    assert rules.matcher().match("#nimbusdown and nimbus fiber") == ("#NimbusDown", "Nimbus Fiber")
    assert rules.wants_language("en-GB") and rules.wants_language("pt-br") and rules.wants_language("")
    assert not rules.wants_language("fr")
    assert ListeningRules().wants_language("fr")


@pytest.mark.parametrize(
    "bad",
    [{"keywords": [""]}, {"keywords": ["x" * 201]}, {"hashtags": ["two words"]}, {"languages": ["english!"]},
     {"keywords": ["k"] * 501}, {"other": 1}],
)
def test_bad_rules_are_refused_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ListeningRules.model_validate(bad)
