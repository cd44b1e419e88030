from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from caredesk.cases.models import Case, Post
from caredesk.connectors.models import ConnectorInstallation


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For monitoring: unauthenticated, counts straight from the database, 503 when the database is down."""
    try:
        connection.ensure_connection()
        posts = Post.objects.count()
        cases = Case.objects.count()
        open_cases = Case.objects.filter(status__in=Case.OPEN_STATUSES).count()
        connectors = {
            name: health
            for name, health in ConnectorInstallation.objects.filter(enabled=True).values_list("name", "health")
        }
    except Exception as exc:  # any database failure means "not healthy", reported rather than raised
        return JsonResponse({"status": "error", "error": type(exc).__name__}, status=503)
    return JsonResponse(
        {"status": "ok", "posts": posts, "cases": cases, "open_cases": open_cases, "connectors": connectors}
    )
