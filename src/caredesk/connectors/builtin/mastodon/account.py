"""Who the token acts as, and what the server allows: ``verify_credentials`` and the instance's configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from caredesk.connectors.base import AuthRevoked, Identity, Refused, Transient
from caredesk.connectors.builtin.mastodon.api import Call, Conversation, json_of, raise_for
from caredesk.connectors.builtin.mastodon.config import check_base_url
from caredesk.connectors.length import MASTODON_MENTION_RE, URL_RE, X_URL_LENGTH, mastodon_length

DEFAULT_MAX_CHARACTERS = 500


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    max_characters: int = DEFAULT_MAX_CHARACTERS
    characters_reserved_per_url: int = X_URL_LENGTH
    streaming_url: str | None = None  # None: the streaming API is on the instance's own host

    def measure(self) -> Callable[[str], int]:
        """How the server counts a status: :func:`mastodon_length`, with its own URL weight where it differs."""
        reserved = self.characters_reserved_per_url
        if reserved == X_URL_LENGTH:
            return mastodon_length

        def length(text: str) -> int:
            urls = len(URL_RE.findall(MASTODON_MENTION_RE.sub(lambda m: "@" + m.group(1), text)))
            return mastodon_length(text) + urls * (reserved - X_URL_LENGTH)

        return length


def whoami(base: str) -> Conversation[Identity]:
    response = yield Call("GET", f"{base}/api/v1/accounts/verify_credentials")
    if response.status_code == 403:
        # A disabled, suspended or unconfirmed account: the token cannot be used until someone acts.
        raise AuthRevoked(f"Mastodon refused the account (403: {response.text[:200]}): reconnect it")
    raise_for(response, "check the access token")
    account = json_of(response, "check the access token")
    if not isinstance(account, Mapping) or not isinstance(account.get("id"), str | int):
        raise Transient("Mastodon's verify_credentials answer has no account id")
    acct = str(account.get("acct") or account.get("username") or "")
    return Identity(account_ids=(str(account["id"]),), handles=(acct,) if acct else (),
                    display_name=str(account.get("display_name") or ""))


def instance(base: str) -> Conversation[InstanceInfo]:
    """The server's limits and streaming host from ``/api/v2/instance`` (``/api/v1/instance`` on servers older
    than 4.0, where they sit at the top level)."""
    response = yield Call("GET", f"{base}/api/v2/instance")
    v1 = response.status_code == 404
    if v1:
        response = yield Call("GET", f"{base}/api/v1/instance")
    raise_for(response, "read the server's configuration")
    body = json_of(response, "read the server's configuration")
    if not isinstance(body, Mapping):
        raise Transient("Mastodon's instance answer is not a JSON object")
    configuration = _mapping(body.get("configuration"))
    statuses = _mapping(configuration.get("statuses"))
    urls = _mapping(body.get("urls") if v1 else configuration.get("urls"))
    streaming = urls.get("streaming_api" if v1 else "streaming")
    streaming_url = None
    if isinstance(streaming, str) and streaming:
        try:
            streaming_url = check_base_url(streaming, "streaming")
        except ValueError as exc:
            raise Refused(f"Mastodon named a streaming host we will not send the token to: {exc}") from None
    max_characters = _positive(statuses.get("max_characters")) or _positive(body.get("max_toot_chars"))
    return InstanceInfo(
        max_characters=max_characters or DEFAULT_MAX_CHARACTERS,
        characters_reserved_per_url=_positive(statuses.get("characters_reserved_per_url")) or X_URL_LENGTH,
        streaming_url=streaming_url,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
