"""One dictionary lookup per token for every table of the default classifier that is keyed on words.

The rules' phrase index (features.py), the shipped model's vocabulary (vectorize.py) and the model's negation scopes
each looked every token up in a dict or set of their own: a Python-level pass over the batch each. Here each token
is looked up once in their merged vocabulary, and what each table needs is gathered from arrays by that code.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from caredesk.triage.model.vectorize import NEGATED, SCOPE_ENDS, Scorer, mark_negated, negated_positions
from caredesk.triage.text.lexicon import NEGATORS
from caredesk.triage.text.phrases import PhraseIndex
from caredesk.triage.text.tokens import SEP, TokenBatch, lower_tokens

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CodedBatch:
    """A token batch with what the rules and the model need of each token."""

    batch: TokenBatch
    rule_rows: IntArray  # per token: its word row in the rules' phrase index (the zero row when unknown)
    model_tokens: list[str]  # per token: as the model sees it (see vectorize.model_tokens)
    model_ids: IntArray  # per token: the model's vocabulary id of its model token, -1 when unseen


class Vocabulary:
    """The merged vocabulary of a phrase index and a scorer; build once per engine."""

    def __init__(self, phrases: PhraseIndex, scorer: Scorer) -> None:
        codes: dict[str, int] = {SEP: 0}
        # A raw token never starts with the negation mark (it is not a token character), so the scorer's marked
        # types are left out; they are looked up separately for the few negated tokens.
        for word in (*phrases.words, *scorer.index, *NEGATORS, *SCOPE_ENDS):
            if not word.startswith(NEGATED):
                codes.setdefault(word, len(codes))
        self.codes = codes
        self.unknown = len(codes)  # the code of every token not in the vocabulary
        self.scorer_index = scorer.index
        size = self.unknown + 1
        self.rule_row = np.full(size, phrases.zero, dtype=np.int64)
        self.model_id = np.full(size, -1, dtype=np.int64)
        self.negator = np.zeros(size, dtype=bool)
        self.scope_end = np.zeros(size, dtype=bool)
        for word, code in codes.items():
            self.rule_row[code] = phrases.words.get(word, phrases.zero)
            self.model_id[code] = scorer.index.get(word, -1)
            self.negator[code] = word in NEGATORS
            self.scope_end[code] = word in SCOPE_ENDS

    def code_joined(self, joined: str) -> CodedBatch:
        """Tokenise a batch joined by :func:`caredesk.triage.text.tokens.join_posts` and code its tokens."""
        return self.code(lower_tokens(joined))

    def code(self, lower: list[str]) -> CodedBatch:
        """Code lowercased tokens, separators included."""
        code = np.fromiter(map(self.codes.get, lower, repeat(self.unknown)), dtype=np.int64, count=len(lower))
        batch = TokenBatch.from_separators(lower, code == self.codes[SEP])
        model_ids = self.model_id[code]
        tokens = lower
        neg = self.negator[code]
        if neg.any():
            negated = negated_positions(neg, self.scope_end[code])
            tokens = mark_negated(lower, negated)
            get = self.scorer_index.get
            model_ids[negated] = [get(tokens[i], -1) for i in negated.tolist()]
        return CodedBatch(batch=batch, rule_rows=self.rule_row[code], model_tokens=tokens, model_ids=model_ids)
