"""One feed over HTTP: a conditional GET with a size cap, and the platform's answer turned into typed errors.

A feed answers 304 when nothing changed since the ETag or Last-Modified we send back, so a poll of an unchanged
feed costs one small request. The body is read in chunks and abandoned past :data:`MAX_FEED_BYTES` (after
decompression, so a gzip bomb is cut off too) or past :data:`FEED_DEADLINE_S` (a server trickling bytes would
otherwise hold the poll for as long as it likes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from caredesk.connectors.base import ConnectorError, RateLimited, Refused, Transient

MAX_FEED_BYTES = 5 * 1024 * 1024
FEED_DEADLINE_S = 30.0
# A 429 without Retry-After: wait this long before asking that feed again.
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=15)
# A Retry-After further away than this is taken as this: a typo on the server must not silence a feed for years.
MAX_RETRY_AFTER = timedelta(hours=24)
# Validators sent back to the server; anything longer or not plain ASCII is not a validator worth keeping.
MAX_VALIDATOR_LENGTH = 512
USER_AGENT = "caredesk-feed-reader/1.0 (RSS/Atom listening for a customer care desk)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, application/xml;q=0.8, "
          "text/xml;q=0.8, */*;q=0.1")


@dataclass(frozen=True, slots=True)
class FeedResponse:
    """What a feed server answered: ``body`` is empty for a 304 (``not_modified``)."""

    not_modified: bool
    body: bytes
    etag: str
    last_modified: str
    content_type: str
    content_language: str
    url: str  # after redirects: relative links in the feed are resolved against it


def validator(value: str | None) -> str:
    """``value`` if it can be sent back as an If-None-Match or If-Modified-Since header, else ""."""
    if not value or len(value) > MAX_VALIDATOR_LENGTH:
        return ""
    if not value.isascii() or not value.isprintable():
        return ""
    return value


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The moment a Retry-After header (seconds or an HTTP date) names, bounded; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=min(int(value[:9]), int(MAX_RETRY_AFTER.total_seconds())))
        return now + max(wait, timedelta(seconds=1))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when.astimezone(UTC), now + timedelta(seconds=1)), now + MAX_RETRY_AFTER)


def get_feed(http: httpx.Client, url: str, etag: str, last_modified: str, now: datetime) -> FeedResponse:
    """GET ``url``, conditionally. Raises :class:`RateLimited` (429, or 503 with Retry-After),
    :class:`Transient` (5xx, timeouts, dropped connections), :class:`Refused` (4xx: the feed needs a login, is
    gone, or the address is wrong) and :class:`ConnectorError` (a body over the cap, a redirect loop)."""
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with http.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code == 304 or response.status_code >= 400:
                # Read what little there is: a connection closed mid-response is not reused, and with several
                # feeds asked at once that costs far more than the read (a second a poll, measured).
                _drain(response)
            _raise_for_status(response, now)
            final_url = str(response.url)
            new_etag = validator(response.headers.get("etag")) or etag
            new_last_modified = validator(response.headers.get("last-modified")) or last_modified
            if response.status_code == 304:
                return FeedResponse(True, b"", new_etag, new_last_modified, "", "", final_url)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FEED_BYTES:
                raise ConnectorError(f"the feed is {_size(int(declared))}, over the {_size(MAX_FEED_BYTES)} limit")
            body = _read_capped(response)
            return FeedResponse(
                False,
                body,
                new_etag,
                new_last_modified,
                response.headers.get("content-type", ""),
                response.headers.get("content-language", ""),
                final_url,
            )
    except httpx.TimeoutException:
        raise Transient("the feed server did not answer in time") from None
    except httpx.TooManyRedirects:
        raise ConnectorError("the feed address redirects in a loop") from None
    except httpx.DecodingError as exc:
        raise ConnectorError(f"the feed's compressed body cannot be decoded ({exc})") from None
    except httpx.UnsupportedProtocol:
        raise Refused("the feed address (or a redirect) is not an http:// or https:// address") from None
    except httpx.TransportError as exc:
        raise Transient(f"cannot reach the feed server ({type(exc).__name__}: {exc})") from None
    except httpx.HTTPError as exc:
        raise Transient(f"the feed's answer could not be read ({type(exc).__name__}: {exc})") from None


def _raise_for_status(response: httpx.Response, now: datetime) -> None:
    status = response.status_code
    if 200 <= status < 300 or status == 304:
        return
    if status == 429 or (status == 503 and response.headers.get("retry-after")):
        retry_at = retry_after(response.headers.get("retry-after"), now)
        if retry_at is None:
            retry_at = now + DEFAULT_RATE_LIMIT_WAIT
        raise RateLimited(f"the feed server asks us to wait (HTTP {status}) until {retry_at:%Y-%m-%d %H:%M} UTC",
                          retry_at)
    if status >= 500:
        raise Transient(f"the feed server failed (HTTP {status})")
    if status in (401, 403):
        raise Refused(f"the feed refuses access (HTTP {status}): it needs a login caredesk does not have")
    if status in (404, 410):
        raise Refused(f"the feed is not there (HTTP {status}): check its address")
    raise Refused(f"the feed server refused the request (HTTP {status})")


def _read_capped(response: httpx.Response) -> bytes:
    started = time.monotonic()
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > MAX_FEED_BYTES:
            raise ConnectorError(f"the feed is larger than the {_size(MAX_FEED_BYTES)} limit")
        if time.monotonic() - started > FEED_DEADLINE_S:
            raise Transient(f"the feed took more than {FEED_DEADLINE_S:.0f} s to download")
    return bytes(body)


def _drain(response: httpx.Response, limit: int = 64 * 1024) -> None:
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > limit:
            return  # an error page this large is not worth the wait: the connection is dropped instead


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
