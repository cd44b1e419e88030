"""The two ways to run the encoder: onnxruntime (fast) and plain numpy (no native dependency beyond numpy/scipy).

Both take padded ``input_ids`` and ``attention_mask`` (int64, batch × sequence) and return the last hidden state
(float32, batch × sequence × hidden); pooling is done by the caller. They compute the same function: the tests
compare each against reference values from sentence-transformers.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from caredesk.triage.semantic.onnx_graph import ATTENTION_MASK, INPUT_IDS, OUTPUT, build_bert_onnx
from caredesk.triage.semantic.weights import BertConfig

ONNXRUNTIME = "onnxruntime"
NUMPY = "numpy"
RUNTIMES = (ONNXRUNTIME, NUMPY)


class Runtime(Protocol):
    name: str
    version: str
    precision: str  # of the linear layers' weights: "float32" or "int8"

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def usable_cpus() -> int:
    """The CPUs this process may run on (respects ``taskset``/cgroup affinity, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxRuntime:
    """onnxruntime on CPU with the graph built in memory from the weights (see ``onnx_graph``)."""

    name = ONNXRUNTIME

    def __init__(
        self, weights: dict[str, np.ndarray], config: BertConfig, threads: int = 1, int8: bool = False
    ) -> None:
        import onnxruntime as ort

        self.precision = "int8" if int8 else "float32"
        self.version = metadata.version("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:
            # Spinning workers steal the core from whatever else runs on a small, busy machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers etc. are noise here
        self._session: Any = ort.InferenceSession(
            build_bert_onnx(weights, config, int8=int8), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        outputs = self._session.run([OUTPUT], {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask})
        return np.asarray(outputs[0], dtype=np.float32)


@dataclass(frozen=True)
class _Layer:
    qkv_t: np.ndarray  # (hidden, 3·hidden): query (pre-scaled by 1/√head_size), key, value
    qkv_bias: np.ndarray
    out_t: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up_t: np.ndarray
    up_bias: np.ndarray
    down_t: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    result: np.ndarray = centred / np.sqrt(variance + np.float32(eps)) * norm[0] + norm[1]
    return result


class NumpyRuntime:
    """The BERT forward pass in numpy, for installs without onnxruntime. Slower, same results."""

    name = NUMPY
    precision = "float32"

    def __init__(self, weights: dict[str, np.ndarray], config: BertConfig, threads: int = 1) -> None:
        self.version = np.__version__
        self._config = config
        self._threads = threads
        scale = np.float32(1 / np.sqrt(config.head_size))
        self._words = weights["embeddings.word_embeddings.weight"]  # stays memory-mapped: rows load when used
        self._positions = (
            weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
        )
        self._embedding_norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers: list[_Layer] = []
        for n in range(config.num_layers):
            p = f"encoder.layer.{n}."

            def w(name: str, p: str = p) -> np.ndarray:
                return weights[p + name]

            self._layers.append(
                _Layer(
                    qkv_t=np.ascontiguousarray(
                        np.concatenate(
                            [
                                w("attention.self.query.weight") * scale,
                                w("attention.self.key.weight"),
                                w("attention.self.value.weight"),
                            ]
                        ).T
                    ),
                    qkv_bias=np.concatenate(
                        [
                            w("attention.self.query.bias") * scale,
                            w("attention.self.key.bias"),
                            w("attention.self.value.bias"),
                        ]
                    ),
                    out_t=np.ascontiguousarray(w("attention.output.dense.weight").T),
                    out_bias=np.array(w("attention.output.dense.bias")),
                    norm1=(
                        np.array(w("attention.output.LayerNorm.weight")),
                        np.array(w("attention.output.LayerNorm.bias")),
                    ),
                    up_t=np.ascontiguousarray(w("intermediate.dense.weight").T),
                    up_bias=np.array(w("intermediate.dense.bias")),
                    down_t=np.ascontiguousarray(w("output.dense.weight").T),
                    down_bias=np.array(w("output.dense.bias")),
                    norm2=(np.array(w("output.LayerNorm.weight")), np.array(w("output.LayerNorm.bias"))),
                )
            )

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # The products here are small, and OpenBLAS's spinning threads collapse on a busy machine (10 texts/s
        # with 2 threads against 109 with 1, measured on 2 shared cores): cap them for the forward pass.
        with threadpool_limits(limits=self._threads, user_api="blas"):
            return self._forward(input_ids, attention_mask)

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        # Imported here: scipy.special takes ~0.4 s to import, and every `caredesk` command, web server and worker
        # imports this module while only the numpy runtime's GELU needs it.
        from scipy.special import erf

        cfg = self._config
        batch, seq = input_ids.shape
        heads, head_size, hidden = cfg.num_heads, cfg.head_size, cfg.hidden_size
        x = _layer_norm(self._words[input_ids] + self._positions[:seq], self._embedding_norm, cfg.layer_norm_eps)
        bias = ((1.0 - attention_mask.astype(np.float32)) * np.float32(-10000.0))[:, None, None, :]
        for layer in self._layers:
            qkv = (x @ layer.qkv_t + layer.qkv_bias).reshape(batch, seq, 3, heads, head_size)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
            x = _layer_norm(context @ layer.out_t + layer.out_bias + x, layer.norm1, cfg.layer_norm_eps)
            inner = x @ layer.up_t + layer.up_bias
            inner = inner * np.float32(0.5) * (np.float32(1.0) + erf(inner * np.float32(1 / np.sqrt(2.0))))
            x = _layer_norm(inner @ layer.down_t + layer.down_bias + x, layer.norm2, cfg.layer_norm_eps)
        return np.asarray(x, dtype=np.float32)


def make_runtime(
    name: str, weights: dict[str, np.ndarray], config: BertConfig, threads: int = 1, int8: bool = False
) -> Runtime:
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if name == ONNXRUNTIME:
        return OnnxRuntime(weights, config, threads, int8)
    if name == NUMPY:
        if int8:
            raise ValueError("int8 needs the onnxruntime runtime")
        return NumpyRuntime(weights, config, threads)
    raise ValueError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
