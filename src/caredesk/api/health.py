from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from caredesk.api.auth import TokenAuth
from caredesk.cases.access import visible_brand_ids, visible_cases, visible_posts
from caredesk.connectors.health import connectors_health
from caredesk.connectors.models import ConnectorInstallation


def _caller(request: HttpRequest) -> object | None:
    """The logged-in user (session) or the owner of a valid bearer token; None for an anonymous monitor."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return TokenAuth().authenticate(request, token)
    return None


def _connector_health(installations: QuerySet[ConnectorInstallation]) -> list[dict[str, object]]:
    rows = list(installations.order_by("pk"))
    health = connectors_health(rows)
    return [{"id": i.pk, "name": i.name, **health[i.pk]} for i in rows]


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For monitoring: whether the service and its database are up (503 when the database is down).

    Anonymous callers learn only that. With a session or a bearer token the answer adds case and post counts and
    connector health, for the caller's brands only.
    """
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        user = _caller(request)
        if user is None:
            return JsonResponse({"status": "ok"})
        cases = visible_cases(user)  # type: ignore[arg-type]
        brands = visible_brand_ids(user)  # type: ignore[arg-type]
        installations = ConnectorInstallation.objects.filter(enabled=True)
        if brands is not None:
            installations = installations.filter(brand_id__in=brands)
        details = {
            "status": "ok",
            "posts": visible_posts(user).count(),  # type: ignore[arg-type]
            "cases": cases.count(),
            "open_cases": cases.filter(status__in=("new", "open", "pending")).count(),
            "connectors": dict(installations.values_list("name", "health")),
            # Per installation: connected, last event, lag, rate limit left, errors, failed payloads.
            "connector_health": _connector_health(installations),
        }
    except Exception as exc:  # any database failure means "not healthy", reported rather than raised
        return JsonResponse({"status": "error", "error": type(exc).__name__}, status=503)
    return JsonResponse(details)
