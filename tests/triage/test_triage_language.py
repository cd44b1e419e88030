from __future__ import annotations

import pytest

from caredesk.triage import classify, classify_one
from caredesk.triage.types import PostSignals


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Llevo dos días sin internet y nadie me da una solución", "es"),
        ("Hola, ¿cómo puedo cambiar la dirección de mi cuenta?", "es"),
        ("Toujours pas de connexion depuis hier soir, c'est inadmissible", "fr"),
        ("Bonjour, mon colis n'est jamais arrivé", "fr"),
        ("Seit gestern kein Internet und keiner meldet sich", "de"),
        ("Hallo, wie kann ich meinen Vertrag kündigen?", "de"),
        ("Minha encomenda não chegou e ninguém responde", "pt"),
        ("Da ieri non funziona internet, nessuno risponde al telefono", "it"),
        ("Mijn pakket is nog steeds niet bezorgd", "nl"),
        ("My internet has been down since this morning", "en"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert classify_one(PostSignals(text)).language == lang


@pytest.mark.parametrize("text", ["", "👍👍", "https://t.co/abc", "12345", "こんにちは、インターネットが使えません"])
def test_undetermined(text: str) -> None:
    assert classify_one(PostSignals(text)).language == "und"


def test_foreign_complaints_are_complaints() -> None:
    texts = [
        "Llevo dos días sin internet y nadie me da una solución",
        "Toujours pas de connexion depuis hier soir, c'est inadmissible",
        "Seit gestern kein Internet, das Internet funktioniert nicht",
    ]
    for r in classify([PostSignals(t) for t in texts]):
        assert r.complaint.value is True
        assert r.topic.value == "outage"
