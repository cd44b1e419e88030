"""The X provider's configuration and credentials."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from caredesk.connectors.base import ProviderConfig, ProviderCredentials
from caredesk.connectors.builtin.mastodon.config import check_base_url
from caredesk.connectors.listening import ListeningRules


class XConfig(ProviderConfig):
    api: str = Field(default="https://api.x.com", description="X API base URL (https; http only for this machine).")
    user_id: str = Field(default="", description="The brand's numeric X user id; learned from the token if empty.")
    keywords: tuple[str, ...] = Field(default=(), description="Words and phrases noted on mentions that use them.")
    hashtags: tuple[str, ...] = Field(default=(), description="Hashtags (without #) noted on mentions using them.")
    exclude: tuple[str, ...] = Field(default=(), description="Phrases that cancel a keyword match.")
    languages: tuple[str, ...] = Field(default=(), description="ISO 639-1 codes for listening (not yet used).")
    webhook_url: str = Field(default="", description="This installation's public https URL (/hooks/<id>), no port, "
                                                     "where X delivers Activity API events; empty: no webhook.")
    webhook_id: str = Field(default="", description="X's id of the registered webhook, for its subscriptions.")
    query_length: int = Field(default=512, ge=64, le=4096,
                              description="The longest search query or stream rule X accepts (512 self-serve).")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("X delivers webhooks only to an https URL, like https://desk.example.com/hooks/7")
        if parts.port is not None:
            raise ValueError("X webhook URLs may not name a port: serve it on 443")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("an X webhook URL has no user, query or fragment")
        host = parts.hostname
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host == "localhost" or host.endswith((".localhost", ".local", ".internal")) or "." not in host:
                raise ValueError(f"{host} is not a public host name: X must reach the URL") from None
        else:
            if not address.is_global:
                raise ValueError(f"{host} is not a public address: X must reach the URL")
        return value

    @field_validator("webhook_id")
    @classmethod
    def _webhook_id(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[0-9]{1,20}", value):
            raise ValueError("an X webhook id is a number")
        return value
    direct_messages: bool = Field(default=False, description="Also read the brand's DMs (GET /2/dm_events, "
                                  "$0.010 per DM event read) and answer them privately.")
    compliance_hours: int = Field(default=24, ge=1, le=24, description="How often stored posts are checked for "
                                  "deletions and edits on X (X's rule: within 24 hours).")
    compliance_days: int = Field(default=30, ge=1, le=30, description="How far back (days since received) stored "
                                 "posts are checked; each check of a post is a billed post read.")
    ai_replies_approved: bool = Field(default=False, description="X approved this app's AI-written replies (X "
                                      "requires prior approval; the desk itself writes none).")

    @field_validator("api")
    @classmethod
    def _api(cls, value: str) -> str:
        return check_base_url(value, "X API")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[0-9]{1,20}", value):
            raise ValueError("an X user id is a number, like 2244994945")
        return value

    @field_validator("keywords", "hashtags", "exclude", "languages")
    @classmethod
    def _listening(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        name = str(info.field_name)
        cleaned: tuple[str, ...] = getattr(ListeningRules.model_validate({name: value}), name)
        return tuple(dict.fromkeys(cleaned))

    def listening(self) -> ListeningRules:
        return ListeningRules(
            keywords=self.keywords, hashtags=self.hashtags, exclude=self.exclude, languages=self.languages
        )


class XCredentials(ProviderCredentials):
    """OAuth 2.0 user-context tokens (scopes tweet.read tweet.write users.read dm.read dm.write offline.access;
    ``caredesk connector authorize x`` gets them) and the app's client id, needed to refresh them;
    ``bearer_token`` is the app-only token (the streams and their rules); ``consumer_secret`` the app's API key
    secret, which signs webhook deliveries. ``expires_at``: the access token's end in unix seconds, where X said;
    ``scope``: what the brand granted."""

    access_token: SecretStr = Field(min_length=1)
    refresh_token: SecretStr | None = None
    client_id: str = ""
    client_secret: SecretStr | None = None
    bearer_token: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    expires_at: int | None = Field(default=None, description="Set by Connect X account: leave empty.")
    scope: str = Field(default="", description="Set by Connect X account: leave empty.")
