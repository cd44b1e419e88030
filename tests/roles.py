"""Two brands and a person of every role, for the tests of who sees what (pages, API, live stream)."""

from __future__ import annotations

from django.contrib.auth.models import User

from caredesk.accounts.models import Brand
from factories import make_user

# Who sees which brand's cases (and hears its events).
SEES: dict[str, set[str]] = {
    "owner": {"nimbus", "acme"},
    "admin": {"nimbus"},
    "supervisor": {"nimbus"},
    "agent": {"nimbus"},
    "volunteer": set(),
    "outsider": {"acme"},
    "nobody": set(),
}


def make_people(nimbus: Brand, acme: Brand) -> dict[str, User]:
    """The people of :data:`SEES`: a site owner, each role at Nimbus, an Acme agent and someone of no brand."""
    return {
        "owner": make_user("owner", is_site_owner=True),
        "admin": make_user("admin", role="admin", brands=[nimbus]),
        "supervisor": make_user("supervisor", role="supervisor", brands=[nimbus]),
        "agent": make_user("agent", role="agent", brands=[nimbus]),
        "volunteer": make_user("volunteer", role="volunteer", brands=[nimbus]),
        "outsider": make_user("outsider", role="agent", brands=[acme]),
        "nobody": make_user("nobody", brands=[]),
    }
