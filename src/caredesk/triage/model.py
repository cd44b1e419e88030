"""The v0 linear model: bag of word unigrams and bigrams, one logistic head per label.

Stored as a plain ``.npz`` of arrays (no pickle, so loading a weights file cannot run code). Written by
:mod:`caredesk.triage.build_v0` from ``seed_examples.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

WEIGHTS_FILE = "model_v0.npz"
HEADS = ("complaint", "needs_reply", "sentiment", "topic")


@dataclass(frozen=True, slots=True)
class Head:
    """Binary heads have one class name ("true") and one column: the log-odds of True."""

    classes: tuple[str, ...]
    coef: npt.NDArray[np.float64]  # (n features, n columns)
    intercept: npt.NDArray[np.float64]  # (n columns,)

    @property
    def binary(self) -> bool:
        return bool(self.coef.shape[1] == 1)


@dataclass(frozen=True, slots=True)
class LinearModel:
    features: tuple[str, ...]  # "word" or "word word", in coefficient row order
    heads: dict[str, Head]
    meta: dict[str, Any]

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {
            "features": np.array(self.features, dtype=str),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        for name, head in self.heads.items():
            arrays[f"{name}__classes"] = np.array(head.classes, dtype=str)
            arrays[f"{name}__coef"] = head.coef.astype(np.float32)
            arrays[f"{name}__intercept"] = head.intercept.astype(np.float64)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path | None = None) -> LinearModel:
        if path is None:
            with resources.as_file(resources.files("caredesk.triage") / WEIGHTS_FILE) as shipped:
                return cls.load(shipped)
        with np.load(path, allow_pickle=False) as data:
            heads = {
                name: Head(
                    classes=tuple(str(c) for c in data[f"{name}__classes"]),
                    coef=data[f"{name}__coef"].astype(np.float64),
                    intercept=data[f"{name}__intercept"].astype(np.float64),
                )
                for name in HEADS
            }
            return cls(
                features=tuple(str(f) for f in data["features"]),
                heads=heads,
                meta=json.loads(str(data["meta"])),
            )
