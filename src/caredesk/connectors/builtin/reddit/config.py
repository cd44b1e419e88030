"""The Reddit provider's configuration and credentials."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator, model_validator

from caredesk.connectors.base import ProviderConfig, ProviderCredentials
from caredesk.connectors.builtin.mastodon.config import check_base_url
from caredesk.connectors.listening import MAX_RULES, ListeningRules

# Reddit's own rules for names: usernames 3-20 of letters, digits, _ and -; subreddits 2-21 of letters, digits, _.
USERNAME_RE = re.compile(r"[A-Za-z0-9_-]{3,20}")
SUBREDDIT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")
# The parts of a User-Agent: no spaces, colons or parentheses, which would blur ``<platform>:<app id>:<version>``.
_UA_PART = re.compile(r"[A-Za-z0-9._+-]{1,60}")


def _username(value: str) -> str:
    value = value.strip()
    for prefix in ("/u/", "u/"):
        if value.lower().startswith(prefix):
            value = value[len(prefix):]
    if not USERNAME_RE.fullmatch(value):
        raise ValueError("must be a Reddit username (3 to 20 letters, digits, _ or -), like spez")
    return value


def _optional_username(value: str) -> str:
    return _username(value) if value.strip() else ""


Username = Annotated[str, AfterValidator(_username)]
OptionalUsername = Annotated[str, AfterValidator(_optional_username)]


class RedditConfig(ProviderConfig):
    app_id: str = Field(description="Your app's own name for the User-Agent Reddit requires, like "
                                    "com.example.caredesk (letters, digits, dots, dashes).")
    contact_username: Username = Field(description="The Reddit username of whoever runs this app, for the User-Agent "
                                              "(… (by /u/NAME)); Reddit contacts them about problems.")
    app_platform: str = Field(default="server", description="The platform part of the User-Agent.")
    app_version: str = Field(default="1.0.0", description="Your app's version, for the User-Agent.")
    inbox: bool = Field(default=True, description="Read the brand account's inbox: private messages and replies "
                                                  "to its posts and comments.")
    mentions: bool = Field(default=True, description="Read the brand account's username mentions (u/brand).")
    subreddits: tuple[str, ...] = Field(default=(), max_length=50,
                                        description="Subreddits (without r/) to search for the keywords.")
    keywords: tuple[str, ...] = Field(default=(), description="Words and phrases that make a subreddit post a lead.")
    exclude: tuple[str, ...] = Field(default=(), description="Drop subreddit posts containing any of these.")
    subreddit_listing: Literal["search", "new"] = Field(
        default="search",
        description="How subreddits are read: Reddit's search for the keywords (fewer posts to read), or every "
        "new post, matched here (finds what the search misses; busy subreddits take more requests).",
    )
    requests_per_poll: int = Field(
        default=30, ge=3, le=90,
        description="At most this many API calls per poll: the 100 a minute Reddit allows are shared by every "
        "source and by replies.",
    )
    username: OptionalUsername = Field(
        default="", description="The brand's Reddit username; learned from the credentials if empty.")
    api: str = Field(default="https://oauth.reddit.com", description="Reddit API base URL (https; http only for "
                                                                     "this machine).")
    auth: str = Field(default="https://www.reddit.com", description="Reddit OAuth base URL (https; http only for "
                                                                    "this machine).")

    @field_validator("api", "auth")
    @classmethod
    def _base(cls, value: str, info: ValidationInfo) -> str:
        return check_base_url(value, f"Reddit {info.field_name}")

    @field_validator("app_id", "app_platform", "app_version")
    @classmethod
    def _ua_part(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not _UA_PART.fullmatch(value):
            raise ValueError(f"{info.field_name}: 1 to 60 letters, digits, dots, dashes, underscores or +, "
                             "no spaces or colons")
        return value

    @field_validator("subreddits")
    @classmethod
    def _subreddits(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names: dict[str, str] = {}
        for raw in value:
            name = raw.strip()
            for prefix in ("/r/", "r/"):
                if name.lower().startswith(prefix):
                    name = name[len(prefix):]
            name = name.strip("/")
            if not SUBREDDIT_RE.fullmatch(name):
                raise ValueError(f"subreddit {raw[:30]!r}: a name like AskReddit (letters, digits, _)")
            names.setdefault(name.lower(), name)
        return tuple(names.values())

    @field_validator("keywords", "exclude")
    @classmethod
    def _listening(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        name = str(info.field_name)
        cleaned: tuple[str, ...] = getattr(ListeningRules.model_validate({name: value}), name)
        return tuple(dict.fromkeys(cleaned))[:MAX_RULES]

    @model_validator(mode="after")
    def _subreddits_need_keywords(self) -> RedditConfig:
        if self.subreddits and not self.keywords:
            raise ValueError("listening to subreddits needs keywords: it would keep every post")
        return self

    def listening(self) -> ListeningRules:
        return ListeningRules(keywords=self.keywords, exclude=self.exclude)

    def user_agent(self) -> str:
        """The unique User-Agent Reddit asks for; a default one (python-httpx/…) is throttled or refused."""
        return f"{self.app_platform}:{self.app_id}:{self.app_version} (by /u/{self.contact_username})"


class RedditCredentials(ProviderCredentials):
    """A Reddit app's client id (and secret, which an installed app has none of) with either the brand account's
    username and password (a *script* app: password grant) or a refresh token (an installed or web app, from
    ``caredesk connector authorize reddit``). ``access_token`` and ``access_token_expires_at`` are the current
    hour-long token, kept by the desk so that each poll need not ask for a new one."""

    client_id: str = Field(min_length=1, max_length=100, description="The app's client id (under the app's name "
                                                                     "on reddit.com/prefs/apps).")
    client_secret: SecretStr | None = Field(default=None, description="The app's secret (script and web apps; an "
                                                                      "installed app has none).")
    username: OptionalUsername = Field(default="", description="Script app: the brand account's username.")
    password: SecretStr | None = Field(default=None, description="Script app: the brand account's password.")
    refresh_token: SecretStr | None = Field(default=None, description="Installed or web app: a permanent refresh "
                                                                      "token (caredesk connector authorize reddit).")
    # The current token, kept by the desk (never asked for in a form).
    access_token: SecretStr | None = Field(default=None, json_schema_extra={"setup_form": False})
    access_token_expires_at: datetime | None = Field(default=None, json_schema_extra={"setup_form": False})
    access_token_grant: str = Field(default="", json_schema_extra={"setup_form": False})  # which grant it is of

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
            raise ValueError("a Reddit client id is letters, digits, _ and -")
        return value

    @field_validator("access_token_expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("access_token_expires_at must say its time zone")
        return value

    @model_validator(mode="after")
    def _a_grant(self) -> RedditCredentials:
        if self.refresh_token is None and not (self.username and self.password is not None):
            raise ValueError("give either a refresh_token (installed or web app) or the account's username and "
                             "password (script app)")
        if self.refresh_token is None and self.client_secret is None:
            raise ValueError("a script app (username and password) needs its client_secret")
        return self

    def to_storage(self) -> dict[str, Any]:
        data = super().to_storage()
        if self.access_token_expires_at is not None:
            data["access_token_expires_at"] = self.access_token_expires_at.isoformat()  # stored as JSON
        return data

    def grant_fingerprint(self) -> str:
        """Names the app and grant a token was got with, so a token kept from other credentials (an admin who
        changed the account or password) is never used for these."""
        secret = self.refresh_token or self.password
        material = "\n".join((self.client_id, self.username, secret.get_secret_value() if secret else ""))
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    @property
    def grant(self) -> Literal["refresh_token", "password"]:
        return "refresh_token" if self.refresh_token is not None else "password"
