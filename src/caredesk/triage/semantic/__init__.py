"""Optional semantic model: sentence embeddings from all-MiniLM-L6-v2, on CPU, with nothing downloaded at run time.

Behind the ``semantic`` extra (see README.md beside this file). Importing this package is cheap and needs none of
the extra's dependencies; the model loads on the first ``embed`` call and is then kept for the process.

    >>> from caredesk.triage import semantic
    >>> if semantic.available():
    ...     vectors = semantic.embed(["my internet is down"])  # float32 (1, 384), unit rows
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from caredesk.triage.semantic.encoder import Encoder, SemanticUnavailable, load, planned_info, unavailable_reason
from caredesk.triage.semantic.weights import default_model_dir

__all__ = ["Encoder", "SemanticUnavailable", "available", "embed", "load", "model_info"]

_lock = threading.Lock()
_default: Encoder | None = None


def available() -> bool:
    """True when the extra is installed and the weights are found. Reads no weights; never raises."""
    try:
        return unavailable_reason(default_model_dir()) is None
    except Exception:  # a broken install must read as "unavailable", not crash the caller
        return False


def _encoder() -> Encoder:
    global _default
    with _lock:
        if _default is None:
            _default = load()
        return _default


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """float32 (len(texts), 384) sentence embeddings, L2-normalised, mean-pooled as sentence-transformers does.

    Texts longer than 128 word pieces are truncated. Raises SemanticUnavailable (with an install hint) when the
    extra or the weights are missing.
    """
    return _encoder().embed(texts, batch_size=batch_size, progress=progress)


def model_info() -> dict[str, str]:
    """name, package, package_version, runtime (onnxruntime|numpy|unavailable), runtime_version, precision,
    licence, dimensions, max_tokens, weights (the model folder). Loads nothing."""
    with _lock:
        if _default is not None:
            return _default.info()
    return planned_info()
