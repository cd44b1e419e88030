"""The Bluesky installation's config and credentials."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from caredesk.connectors.base import ProviderConfig, ProviderCredentials
from caredesk.connectors.listening import MAX_RULES, ListeningRules

DEFAULT_SERVICE = "https://bsky.social"
DEFAULT_JETSTREAM = "wss://jetstream.us-east.bsky.network/subscribe"
DEFAULT_APPVIEW = "https://public.api.bsky.app"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _checked_url(value: str, secure: str, plain: str) -> str:
    """``value`` with its trailing slash removed; the plain-text scheme only to a loopback address (tests, a
    local relay): tokens and app passwords must not cross a network unencrypted."""
    parts = urlsplit(value)
    if parts.scheme not in (secure, plain) or not parts.hostname:
        raise ValueError(f"{value!r}: expected a {secure}:// URL")
    if parts.scheme == plain and parts.hostname not in _LOOPBACK:
        raise ValueError(f"{value!r}: {plain}:// is only allowed to 127.0.0.1; use {secure}://")
    return value.rstrip("/")


class BlueskyConfig(ProviderConfig):
    service: str = Field(default=DEFAULT_SERVICE, description="The brand account's PDS (or the bsky.social entryway).")
    jetstream: str = Field(default=DEFAULT_JETSTREAM, description="A Jetstream v1 /subscribe URL.")
    appview: str = Field(
        default=DEFAULT_APPVIEW,
        description="Where the handles and names of the authors Jetstream names only by DID are looked up ('' for "
        "none: authors then show as their DID).",
    )
    handle: str = Field(default="", max_length=253, description="The brand's handle, without @.")
    keywords: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    hashtags: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    exclude: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    languages: tuple[str, ...] = Field(
        default=(), max_length=50,
        description="Keep keyword matches only in these languages (a post's langs); addressed posts are always kept.",
    )
    reply_langs: tuple[str, ...] = Field(default=(), max_length=3, description="The langs set on the brand's replies.")
    direct_messages: bool = Field(
        default=False, description="Send private replies through Bluesky chat (the app password needs DM access).",
    )
    rewind_s: float = Field(default=5.0, ge=0, le=600, description="How far before the saved cursor to reconnect.")

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return _checked_url(value, "https", "http")

    @field_validator("appview")
    @classmethod
    def _appview(cls, value: str) -> str:
        return _checked_url(value, "https", "http") if value else ""

    @field_validator("jetstream")
    @classmethod
    def _jetstream(cls, value: str) -> str:
        return _checked_url(value, "wss", "ws")

    @field_validator("handle")
    @classmethod
    def _handle(cls, value: str) -> str:
        return value.strip().lstrip("@").lower()

    @field_validator("reply_langs")
    @classmethod
    def _reply_langs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return ListeningRules(languages=value).languages

    @model_validator(mode="after")
    def _rules(self) -> BlueskyConfig:
        self.listening  # noqa: B018 - the listening rules' own checks, at setup rather than at the first post
        return self

    @property
    def listening(self) -> ListeningRules:
        return ListeningRules(keywords=self.keywords, hashtags=self.hashtags, exclude=self.exclude,
                              languages=self.languages)


class BlueskyCredentials(ProviderCredentials):
    """An app password (Settings → Privacy and security → App passwords), never the account password. The
    session tokens are filled in by caredesk after the first login and rotated on refresh."""

    identifier: str = Field(min_length=1, max_length=253, description="The brand's handle or DID.")
    app_password: SecretStr
    access_jwt: SecretStr | None = None
    refresh_jwt: SecretStr | None = None
    did: str = ""
