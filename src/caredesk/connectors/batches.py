"""A stream's batch (:class:`FetchResult`) as JSON bytes and back, for :class:`RawPayload` rows.

The round trip is exact for what processing reads (posts, changes, rejections, cursor, credentials, rate limit, usage,
warnings),
so processing a stored batch again does exactly what processing it the first time did. Credentials the platform
rotated are encrypted inside the JSON: a payload row never holds a secret in clear.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from caredesk.connectors.base import (
    FetchResult,
    NormalizedAuthor,
    NormalizedPost,
    PostChange,
    PostDeleted,
    PostEdited,
    RejectedRecord,
)
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.crypto import decrypt_json, encrypt_json

VERSION = 1


def _post(post: NormalizedPost) -> dict[str, Any]:
    a = post.author
    return {
        "external_id": post.external_id,
        "author": {"external_id": a.external_id, "handle": a.handle, "name": a.name, "followers": a.followers,
                   "verified": a.verified},
        "text": post.text,
        "created_at": post.created_at.isoformat(),
        "in_reply_to_external_id": post.in_reply_to_external_id,
        "conversation_external_id": post.conversation_external_id,
        "is_direct": post.is_direct,
        "language": post.language,
        "url": post.url,
        "raw": dict(post.raw),
        "summoned": post.summoned,
        "matched_keywords": list(post.matched_keywords),
    }


def _unpost(data: Mapping[str, Any]) -> NormalizedPost:
    return NormalizedPost(
        external_id=data["external_id"],
        author=NormalizedAuthor(**data["author"]),
        text=data["text"],
        created_at=datetime.fromisoformat(data["created_at"]),
        in_reply_to_external_id=data["in_reply_to_external_id"],
        conversation_external_id=data["conversation_external_id"],
        is_direct=data["is_direct"],
        language=data["language"],
        url=data["url"],
        raw=data["raw"],
        summoned=data["summoned"],
        matched_keywords=tuple(data["matched_keywords"]),
    )


def _change(change: PostChange) -> dict[str, Any]:
    if isinstance(change, PostEdited):
        return {"edited": _post(change.post)}
    return {"deleted": change.external_id}


def _unchange(data: Mapping[str, Any]) -> PostChange:
    if "edited" in data:
        return PostEdited(_unpost(data["edited"]))
    return PostDeleted(str(data["deleted"]))


def dump_batch(result: FetchResult) -> bytes:
    """The batch as JSON bytes. Values in ``raw`` that JSON has no type for are written as their ``str``."""
    data = {
        "v": VERSION,
        "posts": [_post(p) for p in result.posts],
        "cursor": dict(result.cursor),
        "rejected": [{"position": r.position, "reason": r.reason, "raw": r.raw} for r in result.rejected],
        "changes": [_change(c) for c in result.changes],
        "credentials": encrypt_json(dict(result.credentials)) if result.credentials is not None else None,
        "rate_limit_remaining": result.rate_limit_remaining,
        "usage": [{"operation": u.operation.value, "at": u.at.isoformat(), "ids": list(u.resource_ids),
                   "units": u.units} for u in result.usage],
        "warnings": list(result.warnings),
    }
    # ensure_ascii: a lone surrogate in a text (which the provider should have rejected) still serialises.
    return json.dumps(data, default=str, ensure_ascii=True).encode("ascii")


def load_batch(body: bytes) -> FetchResult:
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError("not a stored stream batch (unknown format version)")
    credentials = data.get("credentials")
    return FetchResult(
        posts=[_unpost(p) for p in data["posts"]],
        cursor=data["cursor"],
        rejected=[RejectedRecord(r["position"], r["reason"], r["raw"]) for r in data["rejected"]],
        changes=[_unchange(c) for c in data["changes"]],
        credentials=decrypt_json(credentials) if credentials is not None else None,
        rate_limit_remaining=data.get("rate_limit_remaining"),
        # Absent from batches stored before the cost meter: nothing to bill.
        usage=tuple(UsageEvent(Operation(u["operation"]), datetime.fromisoformat(u["at"]), tuple(u["ids"]),
                               u["units"]) for u in data.get("usage", ())),
        warnings=tuple(str(w) for w in data.get("warnings", ())),
    )
