"""Record keys and rich text for the posts caredesk writes.

A reply's record key is a TID derived from the reply's idempotency key alone, so a send retried after a crash
writes to the same ``at://`` address: the PDS refuses a second record there, and ``find_reply`` can look it up.
Facets (mentions, links) index the text by UTF-8 byte offsets, as the richtext lexicon requires.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

# base32-sortable, the TID alphabet (https://atproto.com/specs/tid)
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
# The derived timestamps fall in 2023-01-01 + [0, 2^50 µs) (about 35 years): a valid TID that looks like a time
# in Bluesky's life, with 50 + 10 (clock id) = 60 bits taken from the hash.
_TID_EPOCH_US = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
_LINK_RE = re.compile(r"https?://[^\s<>\"'\u00a0]+")
_TRAILING = ".,;:!?)]}'\""


def tid_from_key(key: str) -> str:
    """A TID that depends only on ``key``."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    micros = _TID_EPOCH_US + ((digest >> 10) & ((1 << 50) - 1))
    value = (micros << 10) | (digest & 0x3FF)  # the top bit stays 0: micros < 2^53
    out = []
    for _ in range(13):
        out.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def byte_span(text: str, start: int, end: int) -> dict[str, int]:
    """The facet index of ``text[start:end]`` (character positions) in UTF-8 bytes."""
    byte_start = len(text[:start].encode("utf-8"))
    return {"byteStart": byte_start, "byteEnd": byte_start + len(text[start:end].encode("utf-8"))}


def facets(text: str, mention_handle: str = "", mention_did: str = "") -> list[dict[str, Any]]:
    """Mention facets for ``@mention_handle`` (resolved to ``mention_did``) and link facets for URLs in ``text``."""
    out: list[dict[str, Any]] = []
    if mention_handle and mention_did and not mention_handle.startswith("did:"):
        pattern = re.compile(r"(?<![\w@])@" + re.escape(mention_handle) + r"(?![\w.-]*\w)", re.IGNORECASE)
        for match in pattern.finditer(text):
            out.append({"$type": "app.bsky.richtext.facet",
                        "index": byte_span(text, match.start(), match.end()),
                        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": mention_did}]})
    for match in _LINK_RE.finditer(text):
        uri = match.group().rstrip(_TRAILING)
        out.append({"$type": "app.bsky.richtext.facet",
                    "index": byte_span(text, match.start(), match.start() + len(uri)),
                    "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]})
    out.sort(key=lambda f: f["index"]["byteStart"])
    return out


def split_at_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` → (did, collection, rkey); ValueError for anything else."""
    if not uri.startswith("at://"):
        raise ValueError(f"not an at:// URI: {uri[:80]!r}")
    parts = uri[5:].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a record URI: {uri[:80]!r}")
    return parts[0], parts[1], parts[2]


def post_url(did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{did}/post/{rkey}"
