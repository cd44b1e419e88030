"""The replay provider: a platform simulator that plays a script of posts on a clock, for demos and tests.

Nothing leaves the machine. ``fetch`` hands out the posts whose time has come; ``send_reply`` pretends to
publish and answers with an id derived from the reply's idempotency key, so a retried send gets the same id
back, as it would from a platform that honours idempotency keys.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar

from pydantic import Field

from caredesk.connectors.base import (
    Capability,
    ConnectorError,
    FetchResult,
    NormalizedPost,
    OutboundReply,
    Provider,
    ProviderConfig,
    ReplyRules,
    SentReply,
)
from caredesk.connectors.builtin.replay.script import Script, ScriptPost, load_script
from caredesk.connectors.length import RULES_BY_PLATFORM

# A poll never returns more than this many posts; the rest come on the next poll.
MAX_BATCH = 500
# Quiet script-seconds between the last post of a loop and the first of the next: a loop reads as a new day.
LOOP_PAUSE_S = 30


class ReplayConfig(ProviderConfig):
    brand: str | None = Field(
        default=None, description="Play only this brand's posts; None plays every brand."
    )
    speed: float = Field(default=1.0, gt=0, allow_inf_nan=False, description="Multiplier on real time.")
    loop: bool = Field(default=True, description="Start over, with fresh ids, after the last post.")
    platform: str = Field(default="x", min_length=1, max_length=40)
    path: str | None = Field(default=None, description="A script file to play instead of the bundled demo.")
    handle: str | None = Field(default=None, description="The brand's own handle, shown on its replies.")
    publish_log: str | None = Field(
        default=None,
        description="A file the simulated platform appends every published reply to (JSON lines). With it the "
        "platform can answer whether a reply was published after a lost send, and a test can count publications.",
    )


@dataclass(frozen=True, slots=True)
class ReplayCursor:
    """Where the show is: it started at ``started_at`` and ``position`` posts of loop ``loop`` are out."""

    started_at: datetime
    position: int = 0
    loop: int = 1

    @classmethod
    def from_mapping(cls, cursor: Mapping[str, Any], now: datetime) -> ReplayCursor:
        """An empty cursor starts the show at ``now``."""
        if not cursor:
            return cls(started_at=now)
        try:
            started_at = datetime.fromisoformat(str(cursor["started_at"]))
            position = cursor.get("position", 0)
            loop = cursor.get("loop", 1)
        except (KeyError, ValueError) as exc:
            raise ConnectorError(f"replay cursor is malformed ({exc}); clear it to restart the show") from exc
        if started_at.utcoffset() is None:
            raise ConnectorError("replay cursor has a started_at without a UTC offset; clear it to restart")
        for name, value, least in (("position", position, 0), ("loop", loop, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConnectorError(f"replay cursor has an invalid {name} {value!r}; clear it to restart")
        return cls(started_at=started_at.astimezone(UTC), position=position, loop=loop)

    def to_mapping(self) -> dict[str, Any]:
        return {"started_at": self.started_at.isoformat(), "position": self.position, "loop": self.loop}


def loop_external_id(script_id: str, loop: int) -> str:
    """The id a script post has in ``loop`` (from 1); the first loop keeps the script's own ids."""
    return script_id if loop == 1 else f"{script_id}-L{loop}"


class ReplayProvider(Provider[ReplayConfig]):
    """Plays the bundled demo script (or ``config.path``) as if a platform were delivering it live.

    A post's scheduled time is ``started_at + (offset_s + (loop - 1) * loop_length) / speed``. Each loop
    gives every post, reply reference and conversation a fresh id, so a looping demo keeps producing new work,
    while authors keep their ids: the same customers come back. Replaying the same cursor at the same ``now``
    returns the same posts, so a poll whose cursor was never saved is repeated harmlessly.
    """

    key: ClassVar[str] = "replay"
    display_name: ClassVar[str] = "Demo replay (simulated platform)"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.POLL, Capability.REPLY, Capability.DIRECT_MESSAGES}
    )
    config_model: ClassVar[type[ProviderConfig]] = ReplayConfig
    # The simulated platform answers a repeated idempotency key with the post it already made.
    idempotent_replies: ClassVar[bool] = True

    @property
    def platform(self) -> str:
        return self.config.platform

    @cached_property
    def script(self) -> Script:
        return load_script(self.config.path)

    @cached_property
    def posts(self) -> tuple[ScriptPost, ...]:
        """The script posts this installation plays, in schedule order."""
        posts = self.script.for_brand(self.config.brand)
        if not posts:
            known = ", ".join(sorted(self.script.brands))
            raise ConnectorError(
                f"replay script has no posts for brand {self.config.brand!r} (it has: {known})"
            )
        return posts

    @property
    def loop_length_s(self) -> float:
        """Script-seconds from the start of one loop to the start of the next."""
        return math.ceil(self.posts[-1].offset_s) + LOOP_PAUSE_S

    def scheduled_at(self, started_at: datetime, post: ScriptPost, loop: int) -> datetime:
        offset = post.offset_s + (loop - 1) * self.loop_length_s
        return started_at + timedelta(seconds=offset / self.config.speed)

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        """Return the posts due by ``now`` (at most :data:`MAX_BATCH`) and the cursor after them.

        A show that fell more than a whole loop behind (the demo was left stopped over a weekend) resumes at
        the start of the loop now playing instead of flooding the inbox with stale loops.
        """
        now = _utc(now)
        state = ReplayCursor.from_mapping(cursor, now)
        posts = self.posts
        loop, position = state.loop, min(state.position, len(posts))
        if self.config.loop:
            elapsed = (now - state.started_at).total_seconds() * self.config.speed
            playing = max(1, math.floor(elapsed / self.loop_length_s) + 1)
            if loop < playing - 1:
                loop, position = playing, 0

        out: list[NormalizedPost] = []
        while len(out) < MAX_BATCH:
            next_loop, next_position = loop, position
            if position >= len(posts):
                if not self.config.loop:
                    break
                next_loop, next_position = loop + 1, 0
            post = posts[next_position]
            at = self.scheduled_at(state.started_at, post, next_loop)
            if at > now:
                break  # the cursor moves to a new loop only with that loop's first post
            out.append(self._normalize(post, next_loop, at))
            loop, position = next_loop, next_position + 1
        new_cursor = ReplayCursor(started_at=state.started_at, position=position, loop=loop)
        return FetchResult(posts=tuple(out), cursor=new_cursor.to_mapping())

    def _normalize(self, post: ScriptPost, loop: int, at: datetime) -> NormalizedPost:
        return NormalizedPost(
            external_id=loop_external_id(post.external_id, loop),
            author=post.author,
            text=post.text,
            created_at=at,
            in_reply_to_external_id=loop_external_id(post.in_reply_to, loop) if post.in_reply_to else "",
            conversation_external_id=loop_external_id(post.conversation, loop),
            is_direct=post.is_direct,
            language=post.language,
            # The brand lets a replay of every brand be routed; the script id ties a post back to its line.
            raw={"replay": {"brand": post.brand, "script_id": post.external_id, "loop": loop}},
        )

    def reply_rules(self) -> ReplyRules:
        """The rules of the platform this replay plays (X by default), counted as that platform counts."""
        factory = RULES_BY_PLATFORM.get(self.config.platform)
        return factory() if factory is not None else super().reply_rules()

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        """Simulate publishing: nothing is sent anywhere. The id depends only on the idempotency key."""
        if not reply.text.strip():
            raise ConnectorError("cannot send an empty reply")
        if not reply.idempotency_key:
            raise ConnectorError("cannot send a reply without an idempotency key")
        sent = SentReply(external_id=_reply_id(reply), created_at=_utc(now))
        if self.config.publish_log:
            already = self.find_reply(reply, now)
            if already is not None:
                return already  # as a platform honouring idempotency keys does: the post it already made
            # One write of one line with O_APPEND: a crash of the caller after this returns cannot unpublish it.
            line = json.dumps({"key": reply.idempotency_key, "id": sent.external_id, "at": sent.created_at.isoformat(),
                               "in_reply_to": reply.in_reply_to_external_id}) + "\n"
            fd = os.open(self.config.publish_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return sent

    def find_reply(self, reply: OutboundReply, now: datetime) -> SentReply | None:
        """The platform's answer, read from its publication log; without a log it cannot tell."""
        if not self.config.publish_log:
            return super().find_reply(reply, now)
        for entry in read_publish_log(self.config.publish_log):
            if entry["key"] == reply.idempotency_key:
                return SentReply(external_id=entry["id"], created_at=datetime.fromisoformat(entry["at"]))
        return None


def read_publish_log(path: str) -> list[dict[str, Any]]:
    """Every publication the simulated platform made, oldest first."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def _reply_id(reply: OutboundReply) -> str:
    return "replay-reply-" + hashlib.sha256(reply.idempotency_key.encode("utf-8")).hexdigest()[:16]


def _utc(now: datetime) -> datetime:
    if now.utcoffset() is None:
        raise ConnectorError("the replay clock needs a timezone-aware datetime")
    return now.astimezone(UTC)
