"""Fine-tuning the semantic model's encoder for one task: optional, and PyTorch is needed only to train.

A linear model over frozen sentence embeddings stops near 0.79 macro-F1 on airline sentiment; letting the encoder's
six layers adapt to the task is what published figures above 0.80 do. ``fine_tune`` trains the layers and a
classification head on the mean of the token vectors (the embedding's own pooling) with AdamW, a linear warm-up
and decay, for two epochs. The word, position and type embeddings stay frozen: they are half of the model's
weights, and the model file then stores only what changed (the layers, as float16, about 20 MB).

A :class:`Tuned` runs on the semantic extra's runtime (onnxruntime or numpy) with its layers in place of the
shipped ones, so a trained model file is used without PyTorch. ``model.bundle.TrainedModel`` averages its logits with
the linear model's (a geometric mean of the two probability estimates), which measured better than either alone.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPOCHS = 2
LEARNING_RATE = 5e-5
BATCH_SIZE = 32
WARMUP = 0.1  # share of the steps over which the learning rate rises to its peak
WEIGHT_DECAY = 0.01
TUNED = "encoder.layer."  # the tensors that are trained and saved
# Batches are drawn from windows of this many shuffled examples sorted by length, so that they pad little.
LENGTH_WINDOW = 20
INSTALL_HINT = "fine-tuning needs PyTorch at training time: pip install torch (CPU builds suffice)"


class FineTuneUnavailable(RuntimeError):
    """Fine-tuning cannot run here; the message says what to install."""


def unavailable_reason() -> str | None:
    """Why :func:`fine_tune` would fail, or None. Cheap: imports nothing heavy."""
    import importlib.util

    from caredesk.triage import semantic

    if not semantic.available():
        return "the semantic model is not installed (pip install 'caredesk[semantic]' and its weights)"
    if importlib.util.find_spec("torch") is None:
        return INSTALL_HINT
    return None


class Tuned:
    """A fine-tuned encoder and its head. ``head`` has one row per logit: one for a yes/no task (the log-odds of
    "true"), else one per class in the model's class order. Safe to share between threads."""

    def __init__(
        self, layers: Mapping[str, npt.NDArray[Any]], head: npt.NDArray[Any], head_bias: npt.NDArray[Any],
        meta: Mapping[str, Any],
    ) -> None:
        if head.ndim != 2 or head_bias.shape != (head.shape[0],):
            raise ValueError(f"head {head.shape} and bias {head_bias.shape} do not match")
        # Stored as float16: rounding here makes a freshly trained model predict exactly as its saved file will.
        self.layers = {name: np.asarray(value, dtype=np.float16) for name, value in layers.items()}
        self.head = np.asarray(head, dtype=np.float32)
        self.head_bias = np.asarray(head_bias, dtype=np.float32)
        self.meta = dict(meta)
        self._encoder: Any = None
        self._lock = threading.Lock()

    def encoder(self) -> Any:
        """The semantic encoder with these layers, loaded on first use."""
        with self._lock:
            if self._encoder is None:
                from caredesk.triage.semantic import encoder

                overrides = {name: value.astype(np.float32) for name, value in self.layers.items()}
                self._encoder = encoder.load(overrides=overrides)
            return self._encoder

    def logits(self, texts: Sequence[str], progress: bool = False) -> FloatArray:
        """(len(texts), rows of ``head``)."""
        pooled = np.asarray(self.encoder().pooled(list(texts), progress=progress), dtype=np.float64)
        out: FloatArray = pooled @ self.head.T.astype(np.float64) + self.head_bias.astype(np.float64)
        return out

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[Any]]:
        """The arrays to save in a model file, under ``prefix``."""
        out: dict[str, npt.NDArray[Any]] = {
            prefix + "meta": np.array(json.dumps({**self.meta, "layers": sorted(self.layers)}, sort_keys=True)),
            prefix + "head": self.head,
            prefix + "head_bias": self.head_bias,
        }
        for name, value in self.layers.items():
            out[prefix + name] = value
        return out

    @classmethod
    def from_arrays(cls, data: Any, prefix: str) -> Tuned:
        meta = json.loads(str(data[prefix + "meta"]))
        layers = {name: data[prefix + name] for name in meta.pop("layers")}
        return cls(layers, data[prefix + "head"], data[prefix + "head_bias"], meta)


def fine_tune(
    texts: Sequence[str],
    targets: Sequence[int],
    n_classes: int,
    *,
    seed: int = 0,
    epochs: float = EPOCHS,
    progress: bool = False,
) -> Tuned:
    """Fine-tune the encoder on ``texts`` with class indices ``targets`` (0 .. n_classes - 1).

    A two-class head is folded into one log-odds row (class 1 against class 0). Deterministic for a given seed on
    one machine. Raises FineTuneUnavailable when PyTorch or the semantic model is missing.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise FineTuneUnavailable(reason)
    if len(texts) != len(targets) or not len(texts):
        raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
    import torch

    from caredesk.triage.semantic import encoder as semantic_encoder
    from caredesk.triage.semantic.runtimes import usable_cpus
    from caredesk.triage.semantic.weights import default_model_dir, read_bert_weights, read_config

    torch.manual_seed(seed)
    torch.set_num_threads(usable_cpus())
    model_dir = default_model_dir()
    assert model_dir is not None  # unavailable_reason() checked it
    config = read_config(model_dir)
    base = {name: torch.from_numpy(np.array(value)) for name, value in read_bert_weights(model_dir, config).items()}
    params = {name: value.clone().requires_grad_(True) for name, value in base.items() if name.startswith(TUNED)}
    head = torch.nn.Linear(config.hidden_size, n_classes)
    ids = semantic_encoder.token_ids(semantic_encoder.load_tokenizer(model_dir), list(texts))
    y = torch.as_tensor(np.asarray(targets, dtype=np.int64))

    net = _Bert(base, params, config)
    optimizer = torch.optim.AdamW([*params.values(), *head.parameters()], lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps = max(1, math.ceil(len(texts) / BATCH_SIZE * epochs))
    warmup = max(1, int(WARMUP * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / steps)
    )
    rng = np.random.default_rng(seed)
    step = 0
    with tqdm(total=steps, disable=not progress, unit="step", desc="fine-tuning") as bar:
        while step < steps:
            for batch in _length_batches(rng.permutation(len(texts)), ids):
                if step >= steps:
                    break
                input_ids, mask = _padded([ids[i] for i in batch])
                logits = head(net.pooled(input_ids, mask))
                loss = torch.nn.functional.cross_entropy(logits, y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                bar.update(1)
    w = head.weight.detach().numpy().astype(np.float64)
    b = head.bias.detach().numpy().astype(np.float64)
    if n_classes == 2:
        w, b = (w[1] - w[0])[None, :], np.array([b[1] - b[0]])
    meta = {
        "epochs": epochs, "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE, "examples": len(texts),
        "seed": seed, "base": semantic_encoder.planned_info().get("name", ""),
    }
    layers = {name: value.detach().numpy() for name, value in params.items()}
    return Tuned(layers, w, b, meta)


def _length_batches(order: IntArray, ids: Sequence[npt.NDArray[np.int64]]) -> list[IntArray]:
    window = BATCH_SIZE * LENGTH_WINDOW
    batches: list[IntArray] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window].tolist(), key=lambda i: len(ids[i]))
        batches += [np.asarray(chunk[k : k + BATCH_SIZE]) for k in range(0, len(chunk), BATCH_SIZE)]
    return batches


def _padded(ids: Sequence[npt.NDArray[np.int64]]) -> tuple[Any, Any]:
    import torch

    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.float32)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1.0
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


class _Bert:
    """BERT's forward pass in PyTorch over named tensors: the same computation as the numpy runtime."""

    def __init__(self, base: Mapping[str, Any], trained: Mapping[str, Any], config: Any) -> None:
        self.w = {**base, **trained}
        self.config = config

    def pooled(self, input_ids: Any, mask: Any) -> Any:
        import torch
        import torch.nn.functional as fn

        cfg, w = self.config, self.w
        hidden, heads = cfg.hidden_size, cfg.num_heads
        batch, seq = input_ids.shape
        eps = cfg.layer_norm_eps

        def norm(x: Any, name: str) -> Any:
            return fn.layer_norm(x, (hidden,), w[name + ".weight"], w[name + ".bias"], eps)

        def linear(x: Any, name: str) -> Any:
            return fn.linear(x, w[name + ".weight"], w[name + ".bias"])

        with torch.no_grad():  # the embeddings are frozen
            x = w["embeddings.word_embeddings.weight"][input_ids] + w["embeddings.position_embeddings.weight"][:seq]
            x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = ((1.0 - mask) * -10000.0)[:, None, None, :]
        for n in range(cfg.num_layers):
            p = f"{TUNED}{n}."

            def heads_of(t: Any) -> Any:
                return t.view(batch, seq, heads, hidden // heads).transpose(1, 2)

            q, k, v = (heads_of(linear(x, p + f"attention.self.{part}")) for part in ("query", "key", "value"))
            context = fn.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(batch, seq, -1)
            x = norm(linear(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            inner = fn.gelu(linear(x, p + "intermediate.dense"))
            x = norm(linear(inner, p + "output.dense") + x, p + "output.LayerNorm")
        weights = mask[:, :, None]
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
