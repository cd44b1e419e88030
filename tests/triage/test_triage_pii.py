from __future__ import annotations

import pytest

from caredesk.triage import classify_one, detect_pii, mask_pii
from caredesk.triage.rules.pii import luhn_valid
from caredesk.triage.types import PIIMatch, PostSignals


def kinds(text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start : m.end]) for m in detect_pii(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my account 123456789 is locked", [("account_number", "123456789")]),
        ("acct # 5566 7788 was charged", [("account_number", "5566 7788")]),
        ("account number: 00123456", [("account_number", "00123456")]),
        ("reference 98765432 please", [("account_number", "98765432")]),
        ("IBAN GB29 NWBK 6016 1331 9268 19", [("account_number", "GB29 NWBK 6016 1331 9268 19")]),
        ("call me on +44 7700 900123 please", [("phone", "+44 7700 900123")]),
        ("my number is (555) 123-4567", [("phone", "(555) 123-4567")]),
        ("ring me at 07700900123", [("phone", "07700900123")]),
        ("email jo.bloggs+care@example.co.uk now", [("email", "jo.bloggs+care@example.co.uk")]),
        ("card 4111 1111 1111 1111 declined", [("card", "4111 1111 1111 1111")]),
        ("card 5500-0000-0000-0004 declined", [("card", "5500-0000-0000-0004")]),
        ("send it to 42 Baker Street please", [("address", "42 Baker Street")]),
        ("ich wohne in der Hauptstraße 12", [("address", "Hauptstraße 12")]),
    ],
)
def test_detects(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "flight 482 delayed 5 hours",
        "paid 1,299.00 on 2024-01-15 at 10:30",
        "waited 3 hours on the way home",
        "order #4411 arrived",
        "my router is a TP-Link 5G",
    ],
)
def test_no_false_alarm_on_everyday_numbers(text: str) -> None:
    assert detect_pii(text) == ()


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    # A 16-digit number failing Luhn is not a card (it is still masked, as an account number).
    assert kinds("card 4111 1111 1111 1112 declined") != [("card", "4111 1111 1111 1112")]


def test_mask_keeps_last_two_digits() -> None:
    text = "acct 123456789, card 4111 1111 1111 1111, call +44 7700 900123, mail jo@example.com"
    masked = mask_pii(text, detect_pii(text))
    assert masked == ("acct [account number ••89], card [card ••11], call [phone ••23], mail [email]")
    for secret in ("123456789", "4111", "7700", "jo@example.com"):
        assert secret not in masked


def test_mask_defaults_to_detection_and_ignores_overlaps() -> None:
    assert mask_pii("jo@example.com") == "[email]"
    overlapping = (PIIMatch("email", 0, 14), PIIMatch("address", 3, 10))
    assert mask_pii("jo@example.com!", overlapping) == "[email]!"
    assert mask_pii("no personal data") == "no personal data"


def test_classify_reports_pii_offsets() -> None:
    text = "Hi, my account 123456789 was charged twice, call me on +44 7700 900123"
    r = classify_one(PostSignals(text))
    assert [(m.kind, text[m.start : m.end]) for m in r.pii] == [
        ("account_number", "123456789"),
        ("phone", "+44 7700 900123"),
    ]
