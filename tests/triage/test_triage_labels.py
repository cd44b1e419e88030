"""Behaviour of triage v0 on clear cases: each test names the decision and the evidence it must cite."""

from __future__ import annotations

import pytest

from caredesk.triage import DEFAULT_TOPICS, classify, classify_one
from caredesk.triage.types import PostSignals, TriageResult

BRAND = ("NimbusCare",)


def triage(text: str, **signals: object) -> TriageResult:
    return classify_one(PostSignals(text=text, **signals))  # type: ignore[arg-type]


def test_clear_outage_complaint() -> None:
    r = triage("@NimbusCare internet has been down all day, total outage in Leeds!!! fix it")
    assert r.complaint.value is True
    assert r.needs_reply.value is True
    assert r.sentiment.value == "negative"
    assert r.topic.value == "outage"
    assert r.urgency.value >= 0.5
    assert r.priority >= 3
    assert any("outage" in why for why in r.urgency.reasons)
    assert "word: 'outage'" in r.topic.reasons
    assert "rule: '!!!'" in r.sentiment.reasons


def test_in_home_fault_is_an_outage_or_technical_complaint() -> None:
    r = triage("no cable, no internet, no phone since we got back from vacation")
    assert r.complaint.value is True
    assert r.needs_reply.value is True
    assert r.topic.value in {"outage", "technical"}
    assert any("negation 'no internet'" in why for why in r.complaint.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks @NimbusAir, the crew on flight 220 were fantastic! ❤️",
        "Huge shoutout to Priya in the Leeds store, so helpful 👍",
        "Love the new app update, great work",
    ],
)
def test_praise_needs_no_reply(text: str) -> None:
    r = triage(text)
    assert r.sentiment.value == "positive"
    assert r.complaint.value is False
    assert r.needs_reply.value is False
    assert r.topic.value == "praise"
    assert r.priority == 1
    assert "rule: praise only" in r.needs_reply.reasons


def test_praise_in_a_direct_message_still_gets_a_reply() -> None:
    r = triage("Thanks so much, the engineer was brilliant", is_direct=True)
    assert r.needs_reply.value is True
    assert "rule: direct message" in r.needs_reply.reasons


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("How do I change the billing address on my account?", {"account", "billing", "question"}),
        ("do you have any deals for students", {"question", "billing"}),
        ("What time does the Manchester store open on Sunday?", {"question"}),
    ],
)
def test_question_needs_reply(text: str, topics: set[str]) -> None:
    r = triage(text)
    assert r.needs_reply.value is True
    assert r.complaint.value is False
    assert r.topic.value in topics
    assert "rule: question" in r.needs_reply.reasons


def test_cancellation_threat_is_churn() -> None:
    r = triage("If this isn't fixed by Friday I'm cancelling my contract and switching to another provider")
    assert r.topic.value == "cancellation"
    assert r.complaint.value is True
    assert any("churn" in why for why in r.urgency.reasons)
    assert r.urgency.value >= 0.5


def test_giveaway_is_spam() -> None:
    r = triage("GIVEAWAY! retweet and follow to win a free iPhone 🎉 winner announced friday")
    assert r.spam.value is True
    assert r.needs_reply.value is False
    assert r.urgency.value == 0.0
    assert "word: 'giveaway'" in r.spam.reasons


@pytest.mark.parametrize(
    "text",
    [
        "follow for follow? f4f followback guaranteed",
        "https://bit.ly/x7Yq",
        "crypto airdrop live, claim here https://t.co/x",
    ],
)
def test_other_spam(text: str) -> None:
    assert triage(text).spam.value is True


def test_complaint_mentioning_crypto_is_not_spam() -> None:
    r = triage("my crypto purchase was charged twice and the app shows an error")
    assert r.spam.value is False
    assert r.complaint.value is True


def test_brand_own_post_is_spam_with_reason() -> None:
    r = triage("We're aware of an outage in Leeds and working on it", author_handle="NimbusCare", brand_handles=BRAND)
    assert r.spam.value is True
    assert r.needs_reply.value is False
    assert r.priority == 1
    assert any("our own post" in why for why in r.spam.reasons)


def test_retweet_of_brand_is_spam_with_reason() -> None:
    r = triage("RT @NimbusCare: new unlimited plans available from today", brand_handles=("@nimbuscare",))
    assert r.spam.value is True
    assert any("retweet of the brand" in why for why in r.spam.reasons)


def test_retweet_of_someone_else_is_not_brand_spam() -> None:
    r = triage("RT @angrycustomer: @NimbusCare my internet is down again", brand_handles=BRAND)
    assert r.spam.value is False


def test_large_following_raises_urgency() -> None:
    text = "my parcel never arrived and nobody answers"
    small = triage(text, author_followers=40)
    large = triage(text, author_followers=2_000_000)
    assert large.urgency.value > small.urgency.value + 0.15
    assert any("followers" in why for why in large.urgency.reasons)
    assert not any("followers" in why for why in small.urgency.reasons)


def test_followers_are_log_scaled() -> None:
    text = "still waiting for my refund"
    u = [triage(text, author_followers=f).urgency.value for f in (1_000, 10_000, 100_000, 1_000_000)]
    steps = [b - a for a, b in zip(u, u[1:], strict=False)]
    assert all(s > 0 for s in steps)
    assert max(steps) - min(steps) < 0.05  # equal steps per tenfold, not per follower


def test_prior_contacts_raise_urgency() -> None:
    text = "still waiting for my refund"
    first = triage(text)
    third = triage(text, prior_contacts=3)
    assert third.urgency.value > first.urgency.value
    assert "rule: 3 earlier contacts" in third.urgency.reasons


def test_priority_follows_urgency() -> None:
    calm = triage("my bill looks a bit higher than usual, can you check?")
    urgent = triage(
        "ENTIRE NETWORK DOWN AGAIN!!! no internet for 3 days, cancelling my contract today 😡",
        author_followers=500_000,
        prior_contacts=3,
    )
    assert calm.priority == 2
    assert urgent.urgency.value >= 0.75
    assert urgent.priority == 4


def test_negation_flips_sentiment() -> None:
    assert triage("the new router is not good at all").sentiment.value == "negative"
    assert triage("no problems at all, everything works").sentiment.value != "negative"


def test_custom_taxonomy() -> None:
    topics = {**DEFAULT_TOPICS, "roaming": ("Roaming", ["roaming", "abroad", "eu roaming"])}
    r = classify_one(PostSignals("charged for roaming while abroad in France"), topics=topics)
    assert r.topic.value == "roaming"
    assert "word: 'roaming'" in r.topic.reasons


def test_taxonomy_without_other_is_refused() -> None:
    with pytest.raises(ValueError, match="other"):
        classify([PostSignals("hello")], topics={"billing": ("Billing", ["bill"])})


def test_long_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="one or two tokens"):
        classify([PostSignals("hello")], topics={**DEFAULT_TOPICS, "x": ("X", ["three word phrase"])})


def test_empty_and_odd_posts() -> None:
    results = classify([PostSignals(""), PostSignals("   "), PostSignals("\x00\x00"), PostSignals("🙂")])
    assert [r.sentiment.value for r in results[:3]] == ["neutral"] * 3
    assert all(r.spam.value is False and r.pii == () for r in results)
    assert classify([]) == []


def test_scores_and_types() -> None:
    r = triage("my package never arrived, please help")
    for label in (r.complaint, r.needs_reply, r.sentiment, r.topic, r.urgency, r.spam):
        assert 0.0 <= label.score <= 1.0
        assert all(isinstance(why, str) for why in label.reasons)
    assert isinstance(r.urgency.value, float)
    assert r.topic.value in DEFAULT_TOPICS
    assert r.as_dict()["topic"]["value"] == "delivery"


def test_model_reason_names_words() -> None:
    r = triage("you charged me twice, I want a refund")
    assert r.topic.value == "billing"
    assert any(why.startswith("model: +'") for why in r.topic.reasons)


def test_sarcastic_thanks_is_negative() -> None:
    r = triage("Thanks for nothing, still no refund")
    assert r.sentiment.value == "negative"
    assert r.complaint.value is True


def test_emoji_are_not_negated() -> None:
    r = triage("no reply yet 😡")
    assert r.sentiment.value == "negative"
    assert "emoji: '😡'" in r.sentiment.reasons


def test_clause_after_but_weighs_more() -> None:
    assert triage("the app is great but the login keeps failing").sentiment.value == "negative"
    assert triage("the wait was long but the agent was lovely").sentiment.value == "positive"


def test_fraud_without_the_word_fraud_is_urgent_evidence() -> None:
    r = triage("Someone used my card for purchases I didn't make")
    assert any("fraud" in why for why in r.urgency.reasons)


@pytest.mark.parametrize(
    "text, topic",
    [
        ("my card was declined twice today, what is going on??", "billing"),
        ("why is my wifi down again?????", "outage"),
        ("how do I reset my password???", "account"),
    ],
)
def test_a_subject_beats_repeated_question_marks(text: str, topic: str) -> None:
    """The form of a post (a question) counts once, however many marks it has; the subject decides the queue."""
    result = classify_one(PostSignals(text))
    assert result.topic.value == topic, result.topic
