"""The stream's reconnect back-off: exponential, capped, jittered."""

from __future__ import annotations

from caredesk.connectors.listen.runner import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, backoff


def test_backoff_doubles_up_to_the_cap_with_jitter():
    for attempt in range(1, 12):
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        waits = {backoff(attempt) for _ in range(200)}
        assert all(0.5 * ceiling <= w <= ceiling for w in waits)
        assert len(waits) > 100  # jittered: listeners cut off together do not return together
    assert backoff(30) <= BACKOFF_CAP_SECONDS
