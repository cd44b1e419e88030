"""The connector contract (v2).

A *provider* is code: it knows one platform's wire format. An *installation* is a database row
(:class:`caredesk.connectors.models.ConnectorInstallation`) holding a provider's config, encrypted credentials,
cursor and health. Providers are pure adapters: config, credentials and an HTTP client are injected; they return
frozen results and a new cursor, and never touch the database, Django settings or globals. Saving cursors and
health is the job of :mod:`caredesk.connectors.actions`.

What a provider can do is a set of capabilities, each a protocol below (a provider implements the methods of the
capabilities it declares):

* **poll** (:class:`Pollable`): ``fetch(cursor, now)`` returns a :class:`FetchResult`;
* **stream** (:class:`Streamable`): ``stream(cursor, http)`` is an async iterator of :class:`FetchResult`
  batches over one long-lived connection, each with the cursor to save once its posts are stored;
* **webhook** (:class:`WebhookReceiver`): ``verify(request)`` checks a delivery's signature or answers the
  platform's challenge, ``parse(body)`` turns a stored payload into a :class:`FetchResult`;
* **reply** / **direct messages**: ``send_reply`` and ``find_reply`` (see :class:`Provider`), and the platform's
  :class:`ReplyRules` (``reply_rules()``), which the composer and the outbox both check;
* ``whoami()`` checks credentials at setup and learns the brand's own account ids and handles.

Results are events: new posts (``posts``), edits and deletions of posts already delivered (``changes``), and
credentials the platform rotated (``credentials``), which the runtime stores encrypted. Errors are typed:
:class:`AuthRevoked`, :class:`RateLimited`, :class:`Refused` (permanent), :class:`Transient`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from caredesk.connectors.costs.prices import PriceTable, UsageEvent


class Capability(enum.StrEnum):
    STREAM = "stream"
    POLL = "poll"
    WEBHOOK = "webhook"
    IMPORT = "import"
    REPLY = "reply"
    DIRECT_MESSAGES = "direct_messages"


class Rung(enum.StrEnum):
    """A way of listening, best first: the *ladder*. The runtime uses the best rung an installation is allowed
    (``Provider.rungs()``) that works now, and falls to the next when one fails, instead of going dark."""

    WEBHOOK = "webhook"  # the platform pushes to /hooks/<id> (needs a public URL)
    STREAM = "stream"  # ``caredesk listen`` holds a long-lived connection
    POLL = "poll"  # the worker polls every CAREDESK_POLL_INTERVAL seconds
    IMPORT = "import"  # nothing automatic works: an operator imports an export (``caredesk ingest``)


class ConnectorError(Exception):
    """A provider could not do its work; the message is safe to show to an operator."""


class CannotTell(ConnectorError):
    """The platform cannot say whether a reply was published."""


class AuthRevoked(ConnectorError):
    """The credentials no longer work (revoked, expired, wrong): an admin must reconnect the installation."""


class RateLimited(ConnectorError):
    """The platform asks us to wait; try again at ``retry_at`` (UTC), not before."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class Refused(ConnectorError):
    """The platform refused this request for good (a reply too long, a deleted parent, no permission); the
    message is the platform's reason, shown to the agent. Retrying the same request cannot succeed."""


class Transient(ConnectorError):
    """A failure that may pass (a 5xx, a dropped connection, a timeout): retry with back-off."""


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
    # False when the post only matched a listening rule: the author did not address the brand (no mention, not a
    # reply to it, not a DM). Some platforms' rules forbid answering such a post through their API.
    summoned: bool = True
    matched_keywords: tuple[str, ...] = ()

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
class PostEdited:
    """A post already delivered was edited on the platform: ``post`` is its new version (same external id)."""

    post: NormalizedPost


@dataclass(frozen=True, slots=True)
class PostDeleted:
    """A post was deleted on the platform: its text is removed here too."""

    external_id: str


PostChange = PostEdited | PostDeleted


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One batch from a platform: store ``posts``, apply ``changes`` (after the posts, in order), store
    ``credentials`` if set, and only then save ``cursor``."""

    posts: Sequence[NormalizedPost]
    cursor: Mapping[str, Any]
    rejected: Sequence[RejectedRecord] = ()
    changes: Sequence[PostChange] = ()
    credentials: Mapping[str, Any] | None = None  # rotated by the platform (OAuth refresh): store these instead
    rate_limit_remaining: int | None = None  # requests left in the platform's window, where it says
    usage: Sequence[UsageEvent] = ()  # the calls this batch took, for a platform that charges per call
    # A part of the read that failed while the rest is stored (one source of several): shown on the health page.
    warnings: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the credentials act as: the brand's own account ids and handles (without @) on this platform."""

    account_ids: tuple[str, ...]
    handles: tuple[str, ...]
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A delivery to ``/hooks/<installation id>`` as the provider sees it (header names lower-case)."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What to answer a platform's challenge or check with, instead of storing anything."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """What the outbox asks a provider to publish."""

    idempotency_key: str
    text: str
    in_reply_to_external_id: str
    in_reply_to_author: NormalizedAuthor
    is_direct: bool = False
    summoned: bool = True  # the post answered addressed the brand (its ReplyRules may refuse it otherwise)


@dataclass(frozen=True, slots=True)
class SentReply:
    external_id: str
    created_at: datetime
    url: str = ""


class ReplyRules:
    """What a platform accepts as a reply, stated by its provider; the composer and the outbox both check it.

    ``measure`` counts a text the platform's way (weighted characters, graphemes, ...); ``max_length`` is the
    limit in that unit and ``max_bytes`` a UTF-8 byte limit where the platform has one. ``answers_unsummoned``:
    whether a post that only matched a keyword (nobody addressed the brand) may be answered through the API;
    ``direct_messages``: whether a private reply is possible at all; ``direct_max_length`` its own limit in
    characters, where a DM's differs from a post's (X: 10,000 against 280 weighted); ``direct_needs_summons``: a
    DM may only go to someone who wrote to the brand (X's rule on unsolicited outreach), so not in answer to a post
    that only matched a keyword. ``ai_written_replies``: whether the platform accepts replies written by an AI
    without prior approval (X does not); the desk itself never writes a reply (see docs/connectors.md).
    """

    def __init__(
        self,
        *,
        max_length: int,
        unit: str = "characters",
        measure: Callable[[str], int] = len,
        max_bytes: int | None = None,
        answers_unsummoned: bool = True,
        direct_messages: bool = False,
        direct_max_length: int | None = None,
        direct_needs_summons: bool = False,
        ai_written_replies: bool = True,
    ) -> None:
        self.max_length = max_length
        self.unit = unit
        self.measure = measure
        self.max_bytes = max_bytes
        self.answers_unsummoned = answers_unsummoned
        self.direct_messages = direct_messages
        self.direct_max_length = direct_max_length
        self.direct_needs_summons = direct_needs_summons
        self.ai_written_replies = ai_written_replies

    def problem(self, text: str, *, direct: bool = False, summoned: bool = True,
                ai_written: bool = False) -> str | None:
        """Why ``text`` cannot be sent as such a reply, or None when it can."""
        if not text.strip():
            return "a reply needs some text"
        if ai_written and not self.ai_written_replies:
            return ("this platform accepts replies written by an AI only with its prior approval, and this "
                    "connection has none: a person must write the reply")
        if direct and not self.direct_messages:
            return "this platform offers no private replies here"
        if direct and not summoned and self.direct_needs_summons:
            return ("the author did not write to the brand (the post only matched a keyword), and this platform's "
                    "rules forbid unsolicited direct messages: a DM may only answer someone who messaged or "
                    "mentioned the brand")
        if not summoned and not self.answers_unsummoned:
            return ("the author did not address the brand (the post only matched a keyword), and this platform's "
                    "rules forbid answering such posts through its API: open it on the platform to answer")
        if direct and self.direct_max_length is not None:
            if len(text) > self.direct_max_length:
                return f"too long: {len(text)} characters, the limit for a direct message is {self.direct_max_length}"
            return None
        length = self.measure(text)
        if length > self.max_length:
            return f"too long: {length} {self.unit}, the limit is {self.max_length}"
        if self.max_bytes is not None and len(text.encode("utf-8")) > self.max_bytes:
            return f"too long: {len(text.encode('utf-8'))} bytes, the limit is {self.max_bytes}"
        return None


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderCredentials(BaseModel):
    """A provider's credentials: secret fields are ``SecretStr`` (never printed); stored encrypted as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_storage(self) -> dict[str, Any]:
        """The JSON to encrypt and store, secrets revealed."""
        return {
            k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in self.model_dump().items()
        }


ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


class Provider(ABC, Generic[ConfigT]):
    """Base class for every connector provider. Subclasses set the class attributes and implement what their
    capabilities promise."""

    key: ClassVar[str]
    display_name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ProviderConfig]]
    credentials_model: ClassVar[type[ProviderCredentials]] = ProviderCredentials
    # True when the platform drops a repeated send of the same reply (an idempotency key, a deterministic record
    # key): a send that failed midway can simply be tried again. Otherwise the outbox looks (find_reply) first.
    idempotent_replies: ClassVar[bool] = False
    # True when the platform's tokens rotate on renewal (X): the outbox then lets it renew under the installation's
    # poll lock and stores :meth:`rotated_credentials` (connectors.rotation).
    rotates_credentials: ClassVar[bool] = False
    # The shortest time between two polls that the platform's rate limits allow (0: CAREDESK_POLL_INTERVAL decides).
    min_poll_seconds: ClassVar[float] = 0.0
    # What the platform charges per call (None: nothing); an installation may override single prices.
    prices: ClassVar[PriceTable | None] = None
    # What an admin must know before connecting (the platform's own approval, its limits), shown on the setup
    # form and by ``caredesk connector add``; plain text.
    setup_notice: ClassVar[str] = ""
    # The longest the platform's terms let us keep its content, in days (None: they set no limit). A brand with an
    # installation of this provider cannot keep content longer (caredesk.retention.actions.do_set_retention).
    max_content_retention_days: ClassVar[int | None] = None

    def __init__(self, config: ConfigT, credentials: Mapping[str, Any], http: httpx.Client | None = None) -> None:
        self.config = config
        self.credentials = credentials
        self.http = http
        # Set by a caller that stores :meth:`rotated_credentials` after its calls, in the transaction recording
        # their outcome, and holds the installation's poll lock meanwhile (the outbox): the provider may then
        # renew tokens outside :meth:`fetch` too.
        self.hand_back_rotated = False

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any]) -> ProviderConfig:
        return cls.config_model.model_validate(dict(raw))

    @classmethod
    def parse_credentials(cls, raw: Mapping[str, Any]) -> ProviderCredentials:
        return cls.credentials_model.model_validate(dict(raw))

    def reply_rules(self) -> ReplyRules:
        """What this platform accepts as a reply (the instance's own limits where the config knows them)."""
        return ReplyRules(max_length=5000)

    def rungs(self) -> tuple[Rung, ...]:
        """The ways of listening this installation is allowed (its config and credentials permit), best first.
        Default: what the provider's capabilities declare; manual import is always the last rung."""
        allowed = [rung for rung, capability in ((Rung.WEBHOOK, Capability.WEBHOOK), (Rung.STREAM, Capability.STREAM),
                                                 (Rung.POLL, Capability.POLL)) if capability in self.capabilities]
        return (*allowed, Rung.IMPORT)

    def learned_config(self) -> Mapping[str, Any]:
        """Settings the platform tells at setup that the config should keep (an instance's own length limit), so
        the desk never has to ask while an agent writes. Called after :meth:`whoami`; default: none."""
        return {}

    def whoami(self) -> Identity | None:
        """Check the credentials and return who they act as (None: a provider with no account, such as news
        feeds). Raise :class:`AuthRevoked` when they do not work."""
        return None

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

    def rotated_credentials(self) -> Mapping[str, Any] | None:
        """Credentials the platform rotated during this instance's calls (an OAuth refresh), to store in place of
        the old ones; None when nothing changed. Only with :attr:`hand_back_rotated` outside :meth:`fetch`."""
        return None

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """Ask the platform whether ``reply`` was published (after a send whose outcome was lost): the post, or
        None when it is certainly not there. Raise :class:`CannotTell` where the platform cannot say; the desk
        then shows the reply as "delivery unknown" for an agent to decide, and never sends it again by itself."""
        raise CannotTell(f"{self.display_name} cannot look up a reply it may have published")


@runtime_checkable
class Pollable(Protocol):
    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult: ...


@runtime_checkable
class ComplianceSweeper(Protocol):
    """A provider whose platform sends no deletion or edit events but requires that they be honoured (X): the
    runtime hands it the external ids of recently stored posts, at most ``compliance_batch`` at a time, and applies
    the changes it returns (its ``usage`` billed, its ``credentials`` stored; ``posts`` and ``cursor`` unused)."""

    compliance_batch: int

    def compliance_every(self) -> timedelta:
        """How often the installation's stored posts are checked (X: within 24 hours)."""
        ...

    def compliance_window(self) -> timedelta:
        """How far back stored posts are checked (by when they were received)."""
        ...

    def compliance_sweep(self, external_ids: Sequence[str], now: datetime) -> FetchResult: ...


@runtime_checkable
class Streamable(Protocol):
    def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        """Batches from one long-lived connection, from ``cursor`` on; each carries the cursor to save once its
        posts are stored. Ends (or raises :class:`Transient`) when the connection drops; the runtime reconnects."""
        ...


@runtime_checkable
class WebhookReceiver(Protocol):
    def verify(self, request: WebhookRequest) -> WebhookAnswer | None:
        """Raise :class:`Refused` for a delivery whose signature is wrong; return an answer for a challenge (the
        delivery is then not stored); None for a genuine delivery to store."""
        ...

    def parse(self, body: bytes, now: datetime) -> FetchResult: ...
