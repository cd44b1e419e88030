"""The connector contract.

A *provider* is code: it knows one platform's wire format. An *installation* is a database row
(:class:`caredesk.connectors.models.ConnectorInstallation`) holding a provider's config, encrypted credentials,
cursor and health. Providers are pure adapters: config, credentials and an HTTP client are injected; they return
frozen :class:`NormalizedPost` objects and a new cursor, and never touch the database, Django settings or globals.
Saving cursors and health is the job of :mod:`caredesk.connectors.actions`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict


class Capability(enum.StrEnum):
    STREAM = "stream"
    POLL = "poll"
    WEBHOOK = "webhook"
    IMPORT = "import"
    REPLY = "reply"
    DIRECT_MESSAGES = "direct_messages"


class ConnectorError(Exception):
    """A provider could not do its work; the message is safe to show to an operator."""


class CannotTell(ConnectorError):
    """The platform cannot say whether a reply was published."""


class MalformedPayload(ConnectorError):
    """One record could not be turned into a post. The rest of the batch is still usable."""


def unstorable(value: str) -> str | None:
    """What in ``value`` PostgreSQL could not store, for a rejection reason; None when it can be stored."""
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # A JSON "\ud83d" escape without its pair decodes to a lone surrogate, which has no UTF-8 form.
            return "a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape)"
    return None


@dataclass(frozen=True, slots=True)
class NormalizedAuthor:
    external_id: str
    handle: str
    name: str = ""
    followers: int = 0
    verified: bool = False


@dataclass(frozen=True, slots=True)
class NormalizedPost:
    """A platform post in caredesk's terms. ``created_at`` is always timezone-aware UTC."""

    external_id: str
    author: NormalizedAuthor
    text: str
    created_at: datetime
    in_reply_to_external_id: str = ""
    conversation_external_id: str = ""
    is_direct: bool = False
    language: str = ""
    url: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ValueError(f"post {self.external_id}: created_at must be timezone-aware")
        if not self.external_id:
            raise ValueError("post without an external id")


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record from a batch that could not be used, with the reason an operator can act on.

    ``raw``: the record as it came (its text, or its decoded fields), so it can be written out, fixed and sent
    again (``caredesk ingest --rejects``).
    """

    position: int
    reason: str
    raw: Any = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    posts: Sequence[NormalizedPost]
    cursor: Mapping[str, Any]
    rejected: Sequence[RejectedRecord] = ()


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """What the outbox asks a provider to publish."""

    idempotency_key: str
    text: str
    in_reply_to_external_id: str
    in_reply_to_author: NormalizedAuthor
    is_direct: bool = False


@dataclass(frozen=True, slots=True)
class SentReply:
    external_id: str
    created_at: datetime
    url: str = ""


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


class Provider(ABC, Generic[ConfigT]):
    """Base class for every connector provider. Subclasses set the class attributes and implement what their
    capabilities promise."""

    key: ClassVar[str]
    display_name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ProviderConfig]]

    def __init__(self, config: ConfigT, credentials: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        self.config = config
        self.credentials = credentials
        self.http = http

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any]) -> ProviderConfig:
        return cls.config_model.model_validate(dict(raw))

    @property
    @abstractmethod
    def platform(self) -> str:
        """The platform the posts live on ("x", "mastodon", ...): length rules and authors are keyed by it."""

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Return posts newer than ``cursor`` and the cursor to save once they are stored."""
        raise ConnectorError(f"{self.key} cannot be polled")

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        """Publish ``reply``. Raise :class:`ConnectorError` when the platform refuses it."""
        raise ConnectorError(f"{self.key} cannot send replies")

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """Ask the platform whether ``reply`` was published (after a send whose outcome was lost): the post, or
        None when it is certainly not there. Raise :class:`CannotTell` where the platform cannot say; the desk
        then shows the reply as "delivery unknown" for an agent to decide, and never sends it again by itself."""
        raise CannotTell(f"{self.display_name} cannot look up a reply it may have published")
