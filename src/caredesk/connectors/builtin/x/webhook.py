"""Activity API deliveries to ``/hooks/<installation id>`` (the webhook rung).

X checks the URL with a CRC challenge: a GET with ``crc_token``, answered with
``{"response_token": "sha256=" + base64(HMAC-SHA256(key=consumer secret, msg=crc_token))}``; it repeats the check
every hour or so. Each delivery is a POST whose ``x-twitter-webhooks-signature`` header is ``sha256=`` +
base64(HMAC-SHA256(consumer secret, body)), compared in constant time; anything else is refused before it is
stored. The body is the same event envelope as the activity stream's (one event, or a list of them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime

from caredesk.connectors.base import FetchResult, Refused, WebhookAnswer, WebhookRequest
from caredesk.connectors.builtin.x.activity import Events, envelopes, parse_event
from caredesk.connectors.listening import KeywordMatcher

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
MAX_CRC_TOKEN = 1000


def digest(secret: str, message: bytes) -> str:
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def crc_answer(secret: str, token: str) -> WebhookAnswer:
    body = json.dumps({"response_token": digest(secret, token.encode())}).encode()
    return WebhookAnswer(status=200, body=body)


def verify(secret: str | None, request: WebhookRequest) -> WebhookAnswer | None:
    if not secret:
        raise Refused("this X installation has no consumer secret, so no delivery can be checked")
    if request.method == "GET":
        token = request.query.get("crc_token", "")
        if not token or len(token) > MAX_CRC_TOKEN:
            return WebhookAnswer(status=400, body=b'{"error": "a CRC check needs a crc_token"}')
        return crc_answer(secret, token)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        raise Refused(f"the delivery has no {SIGNATURE_HEADER} header")
    if not hmac.compare_digest(signature.encode(), digest(secret, request.body).encode()):
        raise Refused("the delivery's signature does not match the consumer secret")
    return None


def parse(body: bytes, brand_id: str, matcher: KeywordMatcher, now: datetime) -> FetchResult:
    """A stored delivery → its posts; a body that cannot be read is one rejected record (the payload is kept)."""
    events = Events()
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        events.reject(0, f"an X webhook delivery that is not JSON ({exc})", body.decode("utf-8", "replace"))
    else:
        for position, event in enumerate(envelopes(decoded)):
            parse_event(event, position, events, brand_id, matcher, now)
    return FetchResult(posts=events.posts, cursor={}, rejected=events.rejected, changes=events.changes,
                       usage=events.usage)
