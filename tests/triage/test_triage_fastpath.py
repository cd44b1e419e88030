"""The columnar batch (``classify_batch``) and the shortcuts behind it give exactly what the plain paths give."""

from __future__ import annotations

import random
import re
import sys

import numpy as np
import pytest

from caredesk.triage import DEFAULT_TOPICS, TriageBatch, classify, classify_batch, classify_one
from caredesk.triage.arrays import SPARSE_FROM, sum_rows
from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.model.vectorize import gram_triplets
from caredesk.triage.rules.pii import detect_pii, detect_pii_joined
from caredesk.triage.text.tokens import _TOKEN_RE, join_posts, lower_tokens
from caredesk.triage.types import PostSignals, TriageResult

TEXTS = [
    "@NimbusCare internet down since 6am!!!",
    "Thanks, great service 👍",
    "",
    "😡😡",
    "not working AT ALL, WHY IS MY BILL SO HIGH",
    "Call me on 07700 900123, account 12345678 is locked",
    "RT @NimbusCare: new plans out today",
    "Llevo dos días sin internet y nadie me da una solución",
    "Mon colis n'est toujours pas arrivé",
    "GIVEAWAY win a free phone https://t.co/abc",
    "no",
    "working great today",
    "How do I cancel my subscription? I'm leaving",
    "card 4111 1111 1111 1111 was charged twice, refund please",
    "send it to 42 Baker Street or Hauptstraße 12",
    "mail jo@example.com about ref 99887766",
    "refundd cancelation xyzzyq",
    "İstanbul ΣΟΦΙΑ",
]


def varied_posts() -> list[PostSignals]:
    posts = []
    for i, text in enumerate(TEXTS * 3):
        posts.append(
            PostSignals(
                text=text,
                author_followers=[0, 150, 25_000, 3_400_000][i % 4],
                author_verified=i % 5 == 0,
                is_direct=i % 3 == 0,
                is_reply=i % 4 == 1,
                prior_contacts=i % 4,
                brand_handles=("NimbusCare",) if i % 2 else (),
                author_handle="nimbuscare" if i % 7 == 0 else f"user{i}",
            )
        )
    return posts


def assert_columns_are(batch: TriageBatch, results: list[TriageResult]) -> None:
    assert len(batch) == len(results)
    for task in ("complaint", "needs_reply", "sentiment", "topic", "urgency", "spam"):
        values = getattr(batch, task).tolist()
        assert values == [getattr(r, task).value for r in results], task
        assert [type(v) for v in values] == [type(getattr(r, task).value) for r in results], task
        assert getattr(batch, f"{task}_score").tolist() == [getattr(r, task).score for r in results], task
    assert batch.priority.tolist() == [r.priority for r in results]
    assert batch.pii == [r.pii for r in results]
    assert batch.language.tolist() == [r.language for r in results]


def test_columns_are_the_one_by_one_results() -> None:
    posts = varied_posts()
    assert_columns_are(classify_batch(posts), [classify_one(p) for p in posts])


def test_columns_with_a_brand_taxonomy() -> None:
    topics = {**DEFAULT_TOPICS, "gadgets": ("Gadgets", ("zorblax", "widget thing"))}
    posts = varied_posts()
    assert_columns_are(classify_batch(posts, topics=topics), [classify_one(p, topics=topics) for p in posts])


def test_columns_with_a_brand_model() -> None:
    pytest.importorskip("sklearn")
    from caredesk.triage.training.train import train_model

    texts = [f"my zorblax {w} today" for w in ("broke", "beeps", "is late", "is lost")]
    texts += [f"the quintz {w} again" for w in ("plan", "desk", "portal", "menu")]
    labels = ["true"] * 4 + ["false"] * 4
    bundle = ModelBundle(
        {
            "complaint": train_model(texts, labels, "complaint", semantic=False),
            "needs_reply": train_model(texts, labels[::-1], "needs_reply", semantic=False),
        }
    )
    posts = varied_posts() + [PostSignals(t) for t in texts]
    batch = classify_batch(posts, model=bundle)
    assert_columns_are(batch, [classify_one(p, model=bundle) for p in posts])
    assert [r.as_dict() for r in batch] == [r.as_dict() for r in classify(posts, model=bundle)]


def test_results_are_built_once_and_match_classify() -> None:
    posts = varied_posts()
    batch = classify_batch(posts)
    first = batch[3]
    assert batch[3] is first
    assert list(batch)[3] is first
    assert [r.as_dict() for r in batch] == [r.as_dict() for r in classify(posts)]


def test_empty_batch() -> None:
    batch = classify_batch([])
    assert len(batch) == 0
    assert list(batch) == []
    assert batch.pii == [] and batch.complaint.tolist() == []


def test_pii_of_a_batch_is_that_of_each_post() -> None:
    rng = random.Random(7)
    pieces = [
        "account", "acct", "a/c", "ref", "IBAN", "call me on", "number is", "12", "1234", "07700 900123",
        "+44 7700 900123", "(555) 123-4567", "4111 1111 1111 1111", "12345678", "GB82 WEST 1234 5698 7654 32",
        "42 Baker Street", "12 rue de la Paix", "Hauptstraße 12", "Calle Mayor 5", "jo@example.com", "@user",
        "٣٤٥٦٧٨٩٠١٢", "İ", "\x00", " ", ", ", "x", "Via",
        "\ud83d",  # a lone surrogate, as a JSON "\ud83d" escape decodes: no UTF-32 codec error in a big batch
    ]
    texts = ["".join(rng.choice(pieces) + rng.choice(" ,-") for _ in range(rng.randrange(8))) for _ in range(600)]
    # A digit run right after a post ending in "call me on" is that post's business, not the next one's.
    texts += ["2 cats. call me on", "12345678 is my number"]
    want = [detect_pii(t) for t in texts]
    for size in (1, 5, 50, len(texts)):  # below and above the size where the batch picks posts per pattern
        got = []
        for i in range(0, len(texts), size):
            chunk = texts[i : i + size]
            got += detect_pii_joined(*join_posts(chunk), [len(t) for t in chunk])
        assert got == want
    assert want[-1][0].kind == "account_number"


def _token_class(ch: str) -> str:
    for name, pattern in (("word", r"[^\W_]"), ("punct", r"[?¿.,;:!]"), ("emoji", _TOKEN_RE.pattern.split("|")[2])):
        if re.fullmatch(pattern, ch):
            return name
    return ch if ch in "'\x00" else "other"


def test_lowercasing_keeps_every_character_in_its_token_class() -> None:
    """text.lower_tokens lowercases before tokenising; that is only right if lowercasing keeps each character's
    length and token class, except for the two characters it checks for ("İ" and "Σ")."""
    changed = (chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000 and chr(c).lower() != chr(c))
    odd = [ch for ch in changed if len(ch.lower()) != 1 or _token_class(ch.lower()) != _token_class(ch)]
    assert odd == ["İ"]
    # Without and with the two exceptions (which take the slower path).
    for text in ("Straße ÀB'C d'Œ ǅ ᾈ Ⅻ Ⓐ", "Straße İstanbul ΣΟΦΙΑΣ. ÀB'C", "ΑΣ.Α ǅ ᾈ"):
        joined = join_posts([text, text.upper()])[0]
        tokens = _TOKEN_RE.findall(joined)
        assert lower_tokens(joined) == [t.lower() for t in tokens]


def test_few_words_hash_like_many() -> None:
    rng = random.Random(3)
    alphabet = "abcxyz09éßİΣ😀'\udfff"
    words = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))) for _ in range(40)]
    many = gram_triplets(words)  # above the size where a few words are hashed in plain Python
    for i in range(0, len(words), 4):
        few = gram_triplets(words[i : i + 4])
        rows = np.flatnonzero((many[0] >= i) & (many[0] < i + 4))
        assert np.array_equal(few[0] + i, many[0][rows])
        assert np.array_equal(few[1], many[1][rows])
        assert np.array_equal(few[2], many[2][rows])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_sum_rows_is_the_plain_sum_in_both_strategies(dtype: type, weighted: bool) -> None:
    rng = np.random.default_rng(5)
    table = rng.normal(size=(40, 3)).astype(dtype)
    for n_pairs in (0, 7, SPARSE_FROM - 1, SPARSE_FROM, 3 * SPARSE_FROM):  # both sides of the strategy switch
        owners = np.sort(rng.integers(0, 30, size=n_pairs))  # owners 30..34 and some below never occur
        rows = rng.integers(0, 40, size=n_pairs)
        weights = rng.normal(size=n_pairs).astype(dtype) if weighted else None
        want = np.zeros((35, 3))
        for k, (owner, row) in enumerate(zip(owners.tolist(), rows.tolist(), strict=True)):
            want[owner] += table[row] * (1.0 if weights is None else weights[k])
        got = sum_rows(owners, rows, 35, table, weights)
        assert got.dtype == dtype and got.shape == (35, 3)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
