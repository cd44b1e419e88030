"""The X provider's configuration and credentials."""

from __future__ import annotations

import re

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
    ``bearer_token`` is the app-only token (kept for app-only reads). ``expires_at``: the access token's end in
    unix seconds, where X said; ``scope``: what the brand granted."""

    access_token: SecretStr = Field(min_length=1)
    refresh_token: SecretStr | None = None
    client_id: str = ""
    client_secret: SecretStr | None = None
    bearer_token: SecretStr | None = None
    expires_at: int | None = Field(default=None, description="Set by Connect X account: leave empty.")
    scope: str = Field(default="", description="Set by Connect X account: leave empty.")
