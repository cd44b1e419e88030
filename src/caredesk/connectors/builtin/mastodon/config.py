"""The Mastodon provider's configuration and credentials."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from caredesk.connectors.base import ProviderConfig, ProviderCredentials
from caredesk.connectors.listening import ListeningRules

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def check_base_url(value: str, what: str = "instance") -> str:
    """An instance (or streaming) base URL: https, a host, no path/query; http only for this machine (tests)."""
    value = value.strip()
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme == "wss":
        parts = parts._replace(scheme="https")
    elif parts.scheme == "ws":
        parts = parts._replace(scheme="http")
    if not parts.hostname:
        raise ValueError(f"{what} URL has no host: {value!r}")
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ValueError(f"{what} URL must use https (http is allowed only for 127.0.0.1 and localhost)")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what} URL must use https, not {parts.scheme!r}")
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{what} URL must be the server's base URL only, like https://mastodon.social")
    return f"{parts.scheme}://{parts.netloc}"


class MastodonConfig(ProviderConfig):
    instance: str = Field(description="The server the brand's account is on, like https://mastodon.social.")
    hashtags: tuple[str, ...] = Field(
        default=(), description="Hashtags (without #) to listen to on that server: posts using them are leads."
    )
    keywords: tuple[str, ...] = Field(
        default=(),
        description="Words and phrases that make a public timeline post a lead (matched here, not by the server); "
        "found ones are also noted on hashtag posts.",
    )
    exclude: tuple[str, ...] = Field(default=(), description="Drop listening posts containing any of these.")
    languages: tuple[str, ...] = Field(
        default=(), description="ISO 639-1 codes: keep only listening posts in these languages (or of none stated)."
    )
    public_timeline: Literal["off", "local", "remote", "all"] = Field(
        default="off",
        description="Also listen to the server's public timeline: only posts matching the keywords or hashtags "
        "are kept.",
    )
    max_characters: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Override the server's reply length limit."
    )
    reply_visibility: Literal["parent", "public", "unlisted"] = Field(
        default="parent",
        description="Visibility of public replies: the answered post's own (parent), or always public/unlisted. "
        "A reply to a direct or followers-only post never becomes more visible than it.",
    )

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("keywords", "hashtags", "exclude", "languages")
    @classmethod
    def _listening(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # The desk's shared listening rules say what a valid keyword, hashtag or language code is.
        name = str(info.field_name)
        cleaned: tuple[str, ...] = getattr(ListeningRules.model_validate({name: value}), name)
        return tuple(dict.fromkeys(cleaned))

    def listening(self) -> ListeningRules:
        return ListeningRules(
            keywords=self.keywords, hashtags=self.hashtags, exclude=self.exclude, languages=self.languages
        )

    @model_validator(mode="after")
    def _public_needs_keywords(self) -> MastodonConfig:
        if self.public_timeline != "off" and not (self.keywords or self.hashtags):
            raise ValueError("listening to the public timeline needs keywords or hashtags: it would keep every post")
        return self


class MastodonCredentials(ProviderCredentials):
    access_token: SecretStr = Field(min_length=1)
    client_id: str | None = None
    client_secret: SecretStr | None = None
