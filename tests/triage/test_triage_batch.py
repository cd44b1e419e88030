"""The batched path must give exactly what one-by-one classification gives."""

from __future__ import annotations

from caredesk.triage import classify, classify_one
from caredesk.triage.types import PostSignals

POSTS = [
    PostSignals("@NimbusCare internet down since 6am!!!", author_followers=25_000, prior_contacts=1),
    PostSignals("Thanks, great service 👍"),
    PostSignals(""),
    PostSignals("not working"),
    PostSignals("Call me on 07700 900123, account 12345678 is locked", is_direct=True),
    PostSignals("RT @NimbusCare: new plans", brand_handles=("NimbusCare",)),
    PostSignals("Llevo dos días sin internet y nadie me da una solución"),
    PostSignals("GIVEAWAY win a free phone https://t.co/abc"),
    PostSignals("no"),  # a negator at the end of a post must not negate the next post
    PostSignals("working great today"),
    PostSignals("contains a \x00 nul byte and jo@example.com"),
    PostSignals("How do I cancel my subscription?", is_reply=True),
    # The words before a digit run tell a phone number from an account number; the previous post's do not count.
    PostSignals("2 cats. call me on"),
    PostSignals("12345678 is my number"),
]


def test_batch_equals_one_by_one() -> None:
    batched = classify(POSTS)
    single = [classify_one(p) for p in POSTS]
    assert [r.as_dict() for r in batched] == [r.as_dict() for r in single]


def test_batch_order_does_not_matter() -> None:
    forward = classify(POSTS)
    backward = classify(POSTS[::-1])[::-1]
    assert [r.as_dict() for r in forward] == [r.as_dict() for r in backward]


def test_negation_does_not_leak_across_posts() -> None:
    results = classify([PostSignals("no"), PostSignals("working great today")])
    assert results[1].sentiment.value == "positive"
    assert results[1].complaint.value is False


def test_pii_offsets_are_per_post_in_a_batch() -> None:
    texts = ["first post", "mail me at jo@example.com", "x\x00y jo@example.com"]
    results = classify([PostSignals(t) for t in texts])
    assert results[0].pii == ()
    for text, r in zip(texts[1:], results[1:], strict=True):
        (match,) = r.pii
        assert text[match.start : match.end] == "jo@example.com"
