"""The listening ladder: which rung an installation listens on now, and why not on a higher one. Pure: no
database, no settings; the runtime passes in what it observed.

An installation is allowed some rungs (``Provider.rungs()``, best first: webhook, stream, poll, then manual
import). Each rung keeps a small state (:class:`RungState`, stored as JSON in ``ladder_state``): when it last
worked, and until when it is held to have failed, with the reason. :func:`choose` takes the best allowed rung that
works now and names the reason each higher one was passed over, so the runtime falls a rung when one fails and
climbs back by itself once ``failed_until`` has passed and the rung works again:

* **webhook** works while a delivery or a challenge (CRC) was verified within :data:`WEBHOOK_WINDOW` (X sends a
  CRC check at least daily, so a registered webhook is never silent that long);
* **stream** works while a ``caredesk listen`` process holds the installation's lease and the rung has not
  failed: a stream the platform refused (:class:`~caredesk.connectors.base.Refused`, e.g. X's 403 for an app not
  enrolled in a product) or that failed :data:`FAILURES_TO_FALL` times in a row is failed for a while, longer each
  time (:func:`retry_after`);
* **poll** works unless the platform refused it;
* **import** always "works": it is the operator importing an export (``caredesk ingest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from caredesk.connectors.base import Rung

# A webhook counts as working for this long after its last verified delivery or challenge (X: CRC at least daily).
WEBHOOK_WINDOW = timedelta(hours=25)
# Connection failures in a row after which a stream is held failed, where a lower automatic rung exists.
FAILURES_TO_FALL = 3
# A failed rung is tried again after RETRY, doubled for each fall in a row, at most RETRY_CAP.
RETRY = timedelta(hours=1)
RETRY_CAP = timedelta(hours=24)
# How much a rung's ``last_ok_at`` may lag before it is written again (every delivery need not write it).
OK_GRANULARITY = timedelta(minutes=1)
# Rungs the runtime can follow by itself.
AUTOMATIC = (Rung.WEBHOOK, Rung.STREAM, Rung.POLL)

_RUNG_VALUES = frozenset(r.value for r in Rung)

IMPORT_ADVICE = "nothing automatic works: import an export with caredesk ingest"


@dataclass(frozen=True, slots=True)
class RungState:
    failed_until: datetime | None = None
    reason: str = ""  # why it failed (shown)
    last_ok_at: datetime | None = None
    failures: int = 0  # connection failures in a row since it last worked (streams)
    falls: int = 0  # times it was held failed in a row: the retry doubles with each

    def failed(self, now: datetime) -> bool:
        return self.failed_until is not None and self.failed_until > now


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else None  # only ever written aware; anything else is ignored


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True, slots=True)
class Ladder:
    """Every rung's state; a rung never written has the empty :class:`RungState`."""

    states: Mapping[Rung, RungState] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Ladder:
        """The stored form back; unknown rungs and malformed entries are left out (a state is only a hint)."""
        states: dict[Rung, RungState] = {}
        for key, value in (raw or {}).items():
            if key not in _RUNG_VALUES or not isinstance(value, Mapping):
                continue
            try:
                states[Rung(key)] = RungState(
                    failed_until=_time(value.get("failed_until")), reason=str(value.get("reason", ""))[:500],
                    last_ok_at=_time(value.get("last_ok_at")), failures=_count(value.get("failures")),
                    falls=_count(value.get("falls")),
                )
            except ValueError:
                continue
        return cls(states)

    def to_json(self) -> dict[str, Any]:
        return {
            rung.value: {
                "failed_until": s.failed_until.isoformat() if s.failed_until else None, "reason": s.reason,
                "last_ok_at": s.last_ok_at.isoformat() if s.last_ok_at else None, "failures": s.failures,
                "falls": s.falls,
            }
            for rung, s in sorted(self.states.items())
        }

    def __getitem__(self, rung: Rung) -> RungState:
        return self.states.get(rung, RungState())

    def _with(self, rung: Rung, state: RungState) -> Ladder:
        return Ladder({**self.states, rung: state})

    def worked(self, rung: Rung, now: datetime) -> Ladder:
        """``rung`` worked at ``now``: its failures are forgotten."""
        return self._with(rung, RungState(last_ok_at=now))

    def cleared(self) -> Ladder:
        """Every failure forgotten (an admin changed the credentials); when each rung last worked is kept."""
        return Ladder({rung: RungState(last_ok_at=s.last_ok_at) for rung, s in self.states.items()})

    def needs_write(self, rung: Rung, now: datetime) -> bool:
        """Whether :meth:`worked` would change more than a ``last_ok_at`` younger than :data:`OK_GRANULARITY`."""
        state = self[rung]
        fresh = state.last_ok_at is not None and now - state.last_ok_at < OK_GRANULARITY
        return not fresh or state != RungState(last_ok_at=state.last_ok_at)

    def refused(self, rung: Rung, reason: str, now: datetime, *, retry: timedelta = RETRY) -> Ladder:
        """The platform refused ``rung`` (retrying the same cannot succeed soon): failed for a while."""
        return self._fall(rung, f"refused by the platform ({_short(reason)})", now, retry)

    def failed_once(self, rung: Rung, reason: str, now: datetime, allowed: Sequence[Rung], *,
                    retry: timedelta = RETRY) -> Ladder:
        """One more failure of ``rung`` in a row; after :data:`FAILURES_TO_FALL` it is held failed for a while,
        but only where a lower automatic rung is allowed (else retrying with back-off is all there is to do)."""
        state = self[rung]
        failures = state.failures + 1
        if failures < FAILURES_TO_FALL or not lower_automatic(allowed, rung):
            return self._with(rung, replace(state, failures=failures, reason=_short(reason)))
        return self._fall(rung, f"failed {failures} times in a row (last: {_short(reason)})", now, retry)

    def _fall(self, rung: Rung, reason: str, now: datetime, retry: timedelta) -> Ladder:
        falls = self[rung].falls + 1
        return self._with(rung, replace(self[rung], failed_until=now + retry_after(falls, base=retry), falls=falls,
                                        failures=0, reason=reason))


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:299] + "…"


def retry_after(falls: int, *, base: timedelta = RETRY, cap: timedelta = RETRY_CAP) -> timedelta:
    """How long a rung stays failed after its ``falls``-th fall in a row: doubling from ``base``, capped."""
    return min(cap, base * 2 ** max(0, falls - 1))


def lower_automatic(allowed: Sequence[Rung], rung: Rung) -> list[Rung]:
    """The automatic rungs allowed below ``rung``."""
    below = list(allowed)[list(allowed).index(rung) + 1:] if rung in allowed else []
    return [r for r in below if r in AUTOMATIC]


def _until(moment: datetime, now: datetime) -> str:
    return f"{moment:%H:%M} UTC" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M} UTC"


def why_not(rung: Rung, ladder: Ladder, now: datetime, *, stream_held: bool) -> str | None:
    """Why ``rung`` does not work now; None when it does."""
    state = ladder[rung]
    if state.failed(now):
        assert state.failed_until is not None
        return f"{state.reason or 'failed'} until {_until(state.failed_until, now)}"
    if rung == Rung.WEBHOOK:
        if state.last_ok_at is None:
            return "no delivery or CRC check received yet"
        if now - state.last_ok_at > WEBHOOK_WINDOW:
            hours = round(WEBHOOK_WINDOW.total_seconds() / 3600)
            return f"no delivery or CRC check in the last {hours} h"
    if rung == Rung.STREAM and not stream_held:
        return "no `caredesk listen` process is running"
    return None


@dataclass(frozen=True, slots=True)
class Choice:
    """The rung in use and, for each allowed rung above it, why it is not used."""

    rung: Rung
    skipped: tuple[tuple[Rung, str], ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{rung.value}: {why}" for rung, why in self.skipped)

    @property
    def advice(self) -> str:
        """What an operator should know, where the ladder reached manual import although it may listen."""
        if self.rung != Rung.IMPORT or not self.skipped:
            return ""
        return f"{IMPORT_ADVICE} ({'; '.join(self.reasons)})"


def choose(allowed: Sequence[Rung], ladder: Ladder, now: datetime, *, stream_held: bool) -> Choice:
    """The best allowed rung that works now; manual import when none does."""
    skipped: list[tuple[Rung, str]] = []
    for rung in allowed:
        if rung == Rung.IMPORT:
            break
        why = why_not(rung, ladder, now, stream_held=stream_held)
        if why is None:
            return Choice(rung, tuple(skipped))
        skipped.append((rung, why))
    return Choice(Rung.IMPORT, tuple(skipped))


def may_stream(allowed: Sequence[Rung], ladder: Ladder, now: datetime) -> bool:
    """Whether a ``caredesk listen`` should hold this installation's stream: streaming is allowed, has not
    failed, and no higher rung (a webhook) works already."""
    if Rung.STREAM not in allowed or ladder[Rung.STREAM].failed(now):
        return False
    higher = list(allowed)[: list(allowed).index(Rung.STREAM)]
    return all(why_not(rung, ladder, now, stream_held=False) is not None for rung in higher)
