"""The Mastodon provider: mentions and DMs of the brand's account, hashtag and public timeline listening, and
replies, on one server of the federation (``config.instance``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import ValidationError

from caredesk.connectors.base import (
    AuthRevoked,
    CannotTell,
    Capability,
    ConnectorError,
    FetchResult,
    Identity,
    MalformedPayload,
    OutboundReply,
    Provider,
    ProviderConfig,
    ProviderCredentials,
    Refused,
    ReplyRules,
    SentReply,
    Transient,
)
from caredesk.connectors.builtin.mastodon import account
from caredesk.connectors.builtin.mastodon.api import Call, Conversation, json_of, raise_for, run_async, run_sync
from caredesk.connectors.builtin.mastodon.config import MastodonConfig, MastodonCredentials
from caredesk.connectors.builtin.mastodon.parse import parse_time
from caredesk.connectors.builtin.mastodon.stream import stream
from caredesk.connectors.builtin.mastodon.timelines import Cursor, Sorter, catch_up, plain

T = TypeVar("T")
TIMEOUT = httpx.Timeout(20.0, connect=10.0)


def with_mention(text: str, handle: str) -> str:
    """``text`` starting with ``@handle`` unless it already mentions them: Mastodon delivers a reply (and a DM
    reaches its reader) through the mention, not through ``in_reply_to_id``."""
    handle = handle.strip().lstrip("@")
    if not handle:
        return text
    if re.search(r"(?<![\w@])@" + re.escape(handle) + r"(?![\w@]|[.-]\w)", text, re.IGNORECASE):
        return text
    return f"@{handle} {text.lstrip()}"


class MastodonProvider(Provider[MastodonConfig]):
    """Mentions and DMs as summoned posts, hashtag (and optionally public timeline) statuses as listening leads.

    Streams over SSE, catching up by REST on every connection; polls the same REST timelines as a fallback.
    Replies are statuses with ``in_reply_to_id``, sent with the reply's idempotency key (the server keeps it an
    hour, so a retried send returns the first status instead of a second one).
    """

    key: ClassVar[str] = "mastodon"
    display_name: ClassVar[str] = "Mastodon"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.STREAM, Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES}
    )
    config_model: ClassVar[type[ProviderConfig]] = MastodonConfig
    credentials_model: ClassVar[type[ProviderCredentials]] = MastodonCredentials
    # The Idempotency-Key makes a repeated send (within the hour the server keeps it) return the first status.
    idempotent_replies: ClassVar[bool] = True

    def __init__(
        self, config: MastodonConfig, credentials: Mapping[str, Any], http: httpx.Client | None = None
    ) -> None:
        super().__init__(config, credentials, http)
        self._identity: Identity | None = None
        self._instance: account.InstanceInfo | None = None

    @property
    def platform(self) -> str:
        return "mastodon"

    @property
    def base(self) -> str:
        return self.config.instance

    @property
    def token(self) -> str:
        try:
            parsed = MastodonCredentials.model_validate(dict(self.credentials))
        except ValidationError as exc:
            problems = exc.error_count()
            raise AuthRevoked(f"Mastodon credentials are incomplete ({problems} problems): reconnect") from None
        return parsed.access_token.get_secret_value()

    def _run(self, conversation: Conversation[T]) -> T:
        if self.http is not None:
            return run_sync(self.http, self.token, conversation)
        with httpx.Client(timeout=TIMEOUT) as http:
            return run_sync(http, self.token, conversation)

    # -- who and what ------------------------------------------------------------------------------------------

    def whoami(self) -> Identity:
        if self._identity is None:
            self._identity = self._run(account.whoami(self.base))
        return self._identity

    def instance_info(self) -> account.InstanceInfo:
        """The server's status length limit, URL weight and streaming host (``/api/v2/instance``)."""
        if self._instance is None:
            self._instance = self._run(account.instance(self.base))
        return self._instance

    def learned_config(self) -> Mapping[str, Any]:
        """The server's own status length limit, kept in the config at setup (unless the admin set one)."""
        if self.config.max_characters:
            return {}
        try:
            return {"max_characters": self.instance_info().max_characters}
        except ConnectorError:
            return {}  # the limit stays Mastodon's default; replies over the server's are refused with its reason

    def reply_rules(self) -> ReplyRules:
        """The limit is ``config.max_characters``, else what :meth:`instance_info` read on this object, else
        Mastodon's default of 500. Never asks the server: the composer asks for the rules on every render, and a
        slow server must not slow the desk (setup can copy ``instance_info().max_characters`` into the config)."""
        info = self._instance or account.InstanceInfo()
        return ReplyRules(
            max_length=self.config.max_characters or info.max_characters,
            unit="characters",
            measure=info.measure(),
            direct_messages=True,
            answers_unsummoned=True,
        )

    def sorter(self, identity: Identity) -> Sorter:
        return Sorter(identity.account_ids[0], self.config.listening())

    # -- reading -----------------------------------------------------------------------------------------------

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Mentions, DMs and listened statuses since ``cursor`` (at most ten pages per timeline a call)."""
        sorter = self.sorter(self.whoami())
        caught = self._run(catch_up(self.base, Cursor.from_mapping(cursor), sorter, self.config.public_timeline, now))
        return caught.batch.result(caught.cursor)

    async def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        """See :mod:`caredesk.connectors.builtin.mastodon.stream`. Ends with :class:`Transient` on a drop."""
        token = self.token
        if self._identity is None:
            self._identity = await run_async(http, token, account.whoami(self.base))
        if self._instance is None:
            self._instance = await run_async(http, token, account.instance(self.base))
        streaming_base = self._instance.streaming_url or self.base
        async for batch in stream(self.base, streaming_base, token, self.sorter(self._identity),
                                  self.config.public_timeline, Cursor.from_mapping(cursor), http):
            yield batch

    # -- replying ----------------------------------------------------------------------------------------------

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        """Publish ``reply`` as a status answering its parent. A private reply is a ``direct`` status; a public
        one never gets wider visibility than the status it answers (a followers-only post gets a followers-only
        answer). 422 (too long, parent gone) → :class:`Refused` with the server's reason."""
        text = with_mention(reply.text, reply.in_reply_to_author.handle)
        visibility = "direct" if reply.is_direct else self._run(self._visibility(reply.in_reply_to_external_id, now))
        return self._run(self._post(reply, text, visibility, now))

    def _visibility(self, parent_id: str, now: datetime) -> Conversation[str]:
        response = yield Call("GET", f"{self.base}/api/v1/statuses/{_path_id(parent_id)}")
        if response.status_code in (404, 410):
            raise Refused("the post being answered is gone (deleted, or not visible to the brand's account)")
        raise_for(response, "look up the post being answered", now)
        parent = json_of(response, "look up the post being answered")
        visibility = parent.get("visibility") if isinstance(parent, Mapping) else None
        if visibility in ("direct", "private"):
            return str(visibility)
        if self.config.reply_visibility == "parent":
            return visibility if visibility in ("public", "unlisted") else "public"
        return self.config.reply_visibility

    def _post(self, reply: OutboundReply, text: str, visibility: str, now: datetime) -> Conversation[SentReply]:
        response = yield Call(
            "POST", f"{self.base}/api/v1/statuses",
            data={"status": text, "in_reply_to_id": reply.in_reply_to_external_id, "visibility": visibility},
            headers={"Idempotency-Key": reply.idempotency_key},
        )
        raise_for(response, "publish the reply", now)
        status = json_of(response, "publish the reply")
        return _sent(status)

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """Our status among the parent's replies (its context's descendants) with the reply's text, or None.
        :class:`CannotTell` when the parent is gone or the server cannot be asked now."""
        try:
            own_id = self.whoami().account_ids[0]
            return self._run(self._find(reply, own_id, now))
        except (Transient, Refused) as exc:
            raise CannotTell(f"cannot ask Mastodon whether the reply was published: {exc}") from exc

    def _find(self, reply: OutboundReply, own_id: str, now: datetime) -> Conversation[SentReply | None]:
        parent_id = reply.in_reply_to_external_id
        response = yield Call("GET", f"{self.base}/api/v1/statuses/{_path_id(parent_id)}/context")
        if response.status_code in (404, 410):
            raise CannotTell("the post answered is gone, and with it the list of its replies")
        raise_for(response, "read the replies to the post answered", now)
        context = json_of(response, "read the replies to the post answered")
        descendants = context.get("descendants") if isinstance(context, Mapping) else None
        if not isinstance(descendants, list):
            raise CannotTell("Mastodon's answer lists no replies")
        wanted = plain(with_mention(reply.text, reply.in_reply_to_author.handle))
        for status in descendants:
            if not isinstance(status, Mapping) or str(status.get("in_reply_to_id")) != parent_id:
                continue
            author = status.get("account")
            if not isinstance(author, Mapping) or str(author.get("id")) != own_id:
                continue
            content = status.get("content")
            if isinstance(content, str) and plain(content) == wanted:
                return _sent(status)
        return None


def _path_id(status_id: str) -> str:
    if not status_id or not re.fullmatch(r"[0-9A-Za-z_-]{1,100}", status_id):
        raise Refused(f"not a Mastodon status id: {status_id[:40]!r}")
    return status_id


def _sent(status: Any) -> SentReply:
    if not isinstance(status, Mapping) or not isinstance(status.get("id"), str | int):
        raise Transient("Mastodon's answer to the reply has no status id")
    try:
        created_at = parse_time(status.get("created_at"), "the reply's created_at")
    except MalformedPayload as exc:
        raise Transient(str(exc)) from None
    url = status.get("url")
    return SentReply(external_id=str(status["id"]), created_at=created_at, url=url if isinstance(url, str) else "")
