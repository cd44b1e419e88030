"""A small sanity check on sentences written for this test only (never in seed_examples.jsonl).

Forty posts is too few to measure quality; it is here to catch a change that breaks sentiment wholesale.
"""

from __future__ import annotations

import json
from importlib import resources

from caredesk.triage import classify
from caredesk.triage.types import PostSignals

HELD_OUT: list[tuple[str, str]] = [
    ("my train ticket was refunded within an hour, top marks", "positive"),
    ("the engineer turned up early and explained everything, very impressed", "positive"),
    ("genuinely the friendliest call centre I've ever dealt with", "positive"),
    ("Thank you for replacing my broken kettle so fast!", "positive"),
    ("our flight attendant Maria was wonderful with my grandmother", "positive"),
    ("new loyalty scheme is great value, well done", "positive"),
    ("app redesign looks clean and works beautifully 😍", "positive"),
    ("Big thanks for sorting my account so quickly 🙏", "positive"),
    ("delivery came a day early, happy customer here", "positive"),
    ("really pleased with how the complaint was handled", "positive"),
    ("love the new pricing, finally a fair deal", "positive"),
    ("excellent service at the airport lounge today", "positive"),
    ("the hold music has been playing for 50 minutes, this is a joke", "negative"),
    ("Parcel left in a puddle again. Soaking wet. Brilliant. 🙄", "negative"),
    ("worst customer service I have ever experienced", "negative"),
    ("my bill doubled and nobody can explain why", "negative"),
    ("the app logs me out every five minutes, so annoying", "negative"),
    ("Broadband has dropped out four times tonight", "negative"),
    ("third week without a working landline and no engineer in sight", "negative"),
    ("you lost my suitcase and now you won't answer my emails", "negative"),
    ("the replacement card still hasn't arrived and I can't pay for anything", "negative"),
    ("staff at the returns desk were rude and unhelpful", "negative"),
    ("seriously disappointed, the laptop arrived with a cracked screen", "negative"),
    ("you took money from my account twice!!! sort it out", "negative"),
    ("I'm furious, the technician never showed up", "negative"),
    ("completely useless chat bot, it doesn't understand anything", "negative"),
    ("still no signal in the village after two weeks 😡", "negative"),
    ("is the Oxford Street store open on bank holidays?", "neutral"),
    ("what's the baggage allowance for hand luggage?", "neutral"),
    ("can I pay my bill by bank transfer?", "neutral"),
    ("how do I link my loyalty card to the app?", "neutral"),
    ("I'd like to change the name on my booking", "neutral"),
    ("please send me the invoice for March", "neutral"),
    ("does the basic plan include international calls?", "neutral"),
    ("moving house next month, what do I need to do about my broadband?", "neutral"),
    ("where can I find my account number?", "neutral"),
    ("ordered a new phone case this morning", "neutral"),
    ("just landed in Madrid", "neutral"),
    ("when does the summer sale start?", "neutral"),
    ("do you deliver on Sundays?", "neutral"),
]


def test_held_out_sentences_are_not_in_the_seed() -> None:
    seed = resources.files("caredesk.triage") / "seed_examples.jsonl"
    seed_texts = {json.loads(line)["text"].lower() for line in seed.read_text(encoding="utf-8").splitlines()}
    assert not seed_texts & {text.lower() for text, _ in HELD_OUT}


def test_sentiment_accuracy_on_held_out_sentences() -> None:
    results = classify([PostSignals(text) for text, _ in HELD_OUT])
    wrong = [
        (text, want, r.sentiment.value)
        for (text, want), r in zip(HELD_OUT, results, strict=True)
        if r.sentiment.value != want
    ]
    accuracy = 1 - len(wrong) / len(HELD_OUT)
    assert accuracy >= 0.7, f"accuracy {accuracy:.2f}; wrong: {wrong}"
