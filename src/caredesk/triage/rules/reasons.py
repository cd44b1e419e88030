"""Evidence for each decision, as short strings: "word: 'outage'", "rule: churn threat (...)".

Model evidence ("model: +'refund'") is found by :func:`caredesk.triage.model.vectorize.top_terms`.

Finding the evidence is vectorised like the features; only the strings of posts that have evidence are built in
Python, and the per-word strings are made once per row, not per post.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from caredesk.triage.rules import features as F

MAX_WORD_REASONS = 3

# Category slots of a post's word hits: the rule columns, with valence split by sign.
NEG, POS = F.N_RULES, F.N_RULES + 1
Hits = dict[int, list[str]]
NO_HITS: Hits = {}


class ReasonTexts:
    """Strings per feature-table row, made once per engine."""

    def __init__(self, table: F.FeatureTable) -> None:
        self.table = table
        n_rows = table.n_rows
        self.row_text = [self._row_text(table.names[r], negated=r >= n_rows) for r in range(2 * n_rows)]
        # Which hit categories each row feeds; valence goes to NEG or POS by its sign in that row.
        self.row_cats: dict[int, tuple[int, ...]] = {
            row: tuple((NEG if w < 0 else POS) if col == F.VAL else col for col, w in pairs)
            for row, pairs in table.rule_hits.items()
        }
        self.plus = np.array([f" +'{name}'" for name in table.names], dtype=object)
        self.minus = np.array([f" -'{name}'" for name in table.names], dtype=object)

    @staticmethod
    def _row_text(name: str, negated: bool) -> str:
        if negated:
            return f"rule: negation + '{name}'" if name[:1].isalnum() else f"emoji: '{name}'"
        if " " in name:
            return f"phrase: '{name}'"
        if name and not name[0].isalnum() and name not in "?¿.,;:!":
            return f"emoji: '{name}'"
        return f"word: '{name}'"

    def word_hits(self, feats: F.TokenFeatures) -> dict[int, Hits]:
        """Per post with any rule evidence: category -> reason texts, in text order."""
        table = self.table
        has_rule = table.has_rule
        tok = np.flatnonzero(has_rule[feats.rows] | has_rule[feats.bigram_rows])
        out: dict[int, Hits] = {}
        if not len(tok):
            return out
        lower = feats.batch.lower
        names = table.names
        row_text, row_cats = self.row_text, self.row_cats
        columns = (
            tok.tolist(),
            feats.batch.post_of[tok].tolist(),
            feats.rows[tok].tolist(),
            feats.bigram_rows[tok].tolist(),
            feats.negated_by[tok].tolist(),
        )
        for t, p, r, b, k in zip(*columns, strict=True):
            hits = out.get(p)
            if hits is None:
                hits = out[p] = {}
            for row in (r, b):
                cats = row_cats.get(row)
                if cats is None:
                    continue
                if row is r and k and names[r][:1].isalnum():  # emoji are never negated
                    gap = " " if k == 1 else " … "
                    text = f"rule: negation '{lower[t - k]}{gap}{names[r]}'"
                else:
                    text = row_text[row]
                for cat in cats:
                    found = hits.get(cat)
                    if found is None:
                        hits[cat] = [text]
                    elif text not in found:
                        found.append(text)
        return out


def keyword_hits(
    names: list[str],
    matrix: npt.NDArray[np.float32],
    uni: npt.NDArray[np.int64],
    bi: npt.NDArray[np.int64],
    post_of: npt.NDArray[np.int64],
    chosen: npt.NDArray[np.int64],
) -> dict[int, list[str]]:
    """Per post, the keywords of its chosen topic: words, then phrases (at most MAX_WORD_REASONS)."""
    out: dict[int, list[str]] = {}
    topic_tok = chosen[post_of]
    for rows in (uni, bi):
        hit = np.flatnonzero(matrix[rows, topic_tok] > 0)
        for r, p in zip(rows[hit].tolist(), post_of[hit].tolist(), strict=True):
            name = names[r]
            text = f"phrase: '{name}'" if " " in name else f"word: '{name}'"
            found = out.get(p)
            if found is None:
                out[p] = [text]
            elif len(found) < MAX_WORD_REASONS and text not in found:
                found.append(text)
    return out


def quote(reasons: list[str]) -> str:
    """The quoted parts of reasons: ["phrase: 'cancel my'", "word: 'leaving'"] -> "'cancel my', 'leaving'"."""
    found = [r[r.index("'") :] if "'" in r else r for r in reasons[:MAX_WORD_REASONS]]
    return ", ".join(dict.fromkeys(found)) if found else "words"


def followers(count: float) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}k"
    return str(int(count))
