from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caredesk.ops.metrics import metrics_token, registry, token_allows


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format, for a scraper holding the metrics token (see caredesk.ops.metrics)."""
    if not metrics_token():
        return HttpResponse("metrics are off: set CAREDESK_METRICS_TOKEN\n", status=404, content_type="text/plain")
    if not token_allows(request.headers.get("Authorization", "")):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
