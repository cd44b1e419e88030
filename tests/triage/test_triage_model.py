"""The shipped weights are reproducible from the seed file, and load without pickle."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from caredesk.triage.build_v0 import SENTIMENTS, TOPICS, build, load_examples, same_model
from caredesk.triage.model import WEIGHTS_FILE, LinearModel
from caredesk.triage.topics import DEFAULT_TOPICS


def test_seed_examples_are_well_formed() -> None:
    examples = load_examples()
    assert len(examples) >= 300
    assert len({e.text for e in examples}) == len(examples)
    assert {e.sentiment for e in examples} == set(SENTIMENTS)
    assert {e.topic for e in examples} == set(TOPICS) == set(DEFAULT_TOPICS)
    # Praise-only posts need no reply; complaints always do.
    assert all(e.needs_reply for e in examples if e.complaint)


def test_shipped_weights_match_a_fresh_build() -> None:
    pytest.importorskip("sklearn")
    assert same_model(build(), LinearModel.load()), "run: python -m caredesk.triage.build_v0"


def test_weights_file_has_no_pickled_objects(tmp_path: Path) -> None:
    shipped = Path(str(resources.files("caredesk.triage") / WEIGHTS_FILE))
    with np.load(shipped, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        meta = json.loads(str(data["meta"]))
    assert meta["trained_on"] == "seed_examples.jsonl"
    model = LinearModel.load(shipped)
    model.save(tmp_path / "copy.npz")
    assert same_model(model, LinearModel.load(tmp_path / "copy.npz"))
