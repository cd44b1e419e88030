"""What every HTTP provider does with a platform's answer: the status mapped to the contract's typed errors, the
JSON body read, and the platform's own reason shortened (its body is not trusted). Each provider says how its
platform words a reason (``message``) and when a rate limit ends (``retry_at``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from caredesk.connectors.base import AuthRevoked, RateLimited, Refused, Transient

MAX_REASON = 300


def shortened(parts: list[str], response: httpx.Response) -> str:
    """The reason parts as one line of at most :data:`MAX_REASON` characters; the status when there are none."""
    message = " ".join(" ".join(parts).split()) or response.reason_phrase or f"HTTP {response.status_code}"
    return message[:MAX_REASON] + ("…" if len(message) > MAX_REASON else "")


def raise_for_status(response: httpx.Response, platform: str, what: str, *, message: Callable[[httpx.Response], str],
                     retry_at: Callable[[], datetime]) -> None:
    """Return on 2xx; otherwise 401 → :class:`AuthRevoked`, 429 → :class:`RateLimited` at ``retry_at()``, 5xx or
    408 → :class:`Transient`, anything else → :class:`Refused`, each naming ``platform``, ``what`` was tried and
    the platform's reason."""
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = message(response)
    if status == 401:
        raise AuthRevoked(f"{platform} refused the access token while trying to {what} ({reason}): reconnect")
    if status == 429:
        when = retry_at()
        raise RateLimited(f"{platform} rate limit reached while trying to {what}; retry at {when:%H:%M:%S} UTC", when)
    if status >= 500 or status == 408:
        raise Transient(f"{platform} answered {status} while trying to {what} ({reason})")
    raise Refused(f"{platform} refused to {what} ({status}: {reason})")


def json_body(response: httpx.Response, platform: str, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Transient(f"{platform} sent a body that is not JSON while trying to {what}") from None
