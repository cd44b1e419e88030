"""``/hooks/<installation id>``: webhook deliveries from platforms.

The provider checks the delivery (``WebhookReceiver.verify``: a wrong signature is refused with nothing stored, a
challenge is answered as the provider says); a genuine delivery is stored raw in one insert, with the job that
processes it deferred in the same transaction, and answered 202 at once. Processing happens in the worker, so a
slow or failing ingest never makes the platform time out and retry, and a failed delivery is kept with its error
(``caredesk connector payloads --failed``). No session and no CSRF token: the platform is not a browser; the
signature is the authentication. Every verified delivery or answered challenge marks the webhook rung of the
listening ladder as working (:mod:`caredesk.connectors.ladder`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from caredesk.connectors.actions import do_record_rung_ok, lock_installation
from caredesk.connectors.base import ConnectorError, Refused, Rung, WebhookReceiver, WebhookRequest
from caredesk.connectors.ladder import Ladder
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.processing import store_payload
from caredesk.connectors.runtime import get_provider

log = logging.getLogger(__name__)

# Platforms send single events or small batches; a larger body is refused before it is read into memory.
MAX_WEBHOOK_BYTES = 1024 * 1024


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
def receive_webhook(request: HttpRequest, installation_id: int) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return _error(405, "use GET or POST")
    installation = ConnectorInstallation.objects.filter(pk=installation_id, enabled=True).first()
    if installation is None:
        return _error(404, "no such webhook")
    try:
        provider = get_provider(installation)
    except ConnectorError as exc:
        log.warning("webhook for installation %s: %s", installation_id, exc)
        return _error(503, "this webhook is not configured correctly")
    if not isinstance(provider, WebhookReceiver):
        return _error(404, "no such webhook")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _error(400, "invalid Content-Length")
    if declared > MAX_WEBHOOK_BYTES:
        return _error(413, f"a delivery may have at most {MAX_WEBHOOK_BYTES} bytes")
    body = request.read(MAX_WEBHOOK_BYTES + 1)
    if len(body) > MAX_WEBHOOK_BYTES:
        return _error(413, f"a delivery may have at most {MAX_WEBHOOK_BYTES} bytes")
    delivery = WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query={k: str(v) for k, v in request.GET.items()},
        body=body,
    )
    try:
        answer = provider.verify(delivery)
    except Refused as exc:
        return _error(401, str(exc) or "the delivery's signature is not valid")
    now = datetime.now(UTC)
    if answer is not None:
        _worked(installation, now)  # a challenge answered (X's CRC): the platform can reach us
        return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    if request.method != "POST":
        return _error(405, "deliveries are POSTed")
    from caredesk.connectors.tasks import defer_pending  # the tasks module imports the pipeline

    # Stored and processed even while reads are stopped for the budget: the platform billed this delivery already,
    # and accepted data is never lost (health says the budget is passed).
    with transaction.atomic():
        payload_id = store_payload(installation.pk, RawPayload.Source.WEBHOOK, body, now)
        defer_pending(installation.pk)
    _worked(installation, now)
    return JsonResponse({"accepted": payload_id}, status=202)


def _worked(installation: ConnectorInstallation, now: datetime) -> None:
    """The webhook rung works: the runtime uses it (and stops streaming). Written at most once a minute, after
    the delivery is stored, so a busy webhook neither waits for nor holds the installation row lock per delivery."""
    if not Ladder.from_json(installation.ladder_state).needs_write(Rung.WEBHOOK, now):
        return
    with transaction.atomic():
        do_record_rung_ok(lock_installation(installation.pk), Rung.WEBHOOK, now)
