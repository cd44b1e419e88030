"""Registering the installation's webhook with X (``/2/webhooks``, app bearer token), for
``caredesk connector subscribe``.

``POST /2/webhooks {"url"}`` makes X run a CRC check against the URL at once (a GET with ``crc_token`` that the
desk answers with the consumer secret, :mod:`caredesk.connectors.builtin.x.webhook`); only when it passes does X
answer with the webhook's id, which the Activity API subscriptions then name. Webhooks are immutable: a changed
URL is a new webhook (the old one is left for the operator to delete). X's reasons for a refusal
(``CrcValidationFailed``, ``UrlValidationFailed``, ``DuplicateUrlFailed``, ``WebhookLimitExceeded``) are passed
on as they come. Shapes: xdevplatform/docs ``x-api/webhooks/quickstart.mdx``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from caredesk.connectors.base import Refused, Transient
from caredesk.connectors.builtin.x.activity import SubscriptionSync
from caredesk.connectors.builtin.x.api import Call, Conversation, json_of

WEBHOOKS_PATH = "/2/webhooks"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    valid: bool


@dataclass(frozen=True, slots=True)
class WebhookSync:
    webhook: Webhook
    created: bool  # registered now (else it was registered already)
    revalidated: bool  # X had marked it invalid; its CRC check was run again and passed
    others: tuple[Webhook, ...]  # the app's other webhooks (another URL: a former one, or another desk's)


def _webhook(record: Any) -> Webhook | None:
    if not isinstance(record, Mapping):
        return None
    webhook_id, url = record.get("id"), record.get("url")
    if not isinstance(webhook_id, str) or not webhook_id.isdigit() or not isinstance(url, str):
        return None
    return Webhook(webhook_id, url, record.get("valid") is True)


def list_webhooks() -> Conversation[list[Webhook]]:
    response = yield Call("GET", WEBHOOKS_PATH, "list the app's webhooks")
    body = json_of(response, "list the app's webhooks")
    data = body.get("data") if isinstance(body, Mapping) else None
    return [w for w in (_webhook(r) for r in (data if isinstance(data, list) else [])) if w is not None]


def ensure_webhook(url: str) -> Conversation[WebhookSync]:
    """The app's webhook for ``url``: the one registered already (its CRC check run again when X marks it
    invalid), or a new one."""
    existing = yield from list_webhooks()
    others = tuple(w for w in existing if w.url != url)
    ours = next((w for w in existing if w.url == url), None)
    if ours is not None:
        if ours.valid:
            return WebhookSync(ours, created=False, revalidated=False, others=others)
        response = yield Call("PUT", f"{WEBHOOKS_PATH}/{ours.id}", "check the webhook again (CRC)")
        body = json_of(response, "check the webhook again (CRC)")
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping) or data.get("valid") is not True:
            raise Refused(f"X still marks webhook {ours.id} ({url}) invalid: its CRC check failed. The desk must "
                          "answer GET requests at that URL, signed with the app's consumer secret")
        return WebhookSync(Webhook(ours.id, url, True), created=False, revalidated=True, others=others)
    response = yield Call("POST", WEBHOOKS_PATH, "register the webhook", json={"url": url})
    body = json_of(response, "register the webhook")
    # The guide wraps the new webhook in "data"; the API reference shows it bare.
    made = _webhook(body.get("data") if isinstance(body, Mapping) and "data" in body else body)
    if made is None:
        raise Transient("X's answer to the webhook registration has no webhook id")
    return WebhookSync(made, created=True, revalidated=False, others=others)


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What ``caredesk connector subscribe`` made sure of, for its output and the config it learned."""

    user_id: str
    handle: str
    webhook: WebhookSync | None
    webhook_id: str
    subscriptions: SubscriptionSync

    def learned(self) -> dict[str, Any]:
        return {"webhook_id": self.webhook_id} if self.webhook_id else {}

    def lines(self) -> list[str]:
        out: list[str] = []
        hook = self.webhook
        if hook is not None:
            how = ("registered with X now; its CRC check passed" if hook.created
                   else "its CRC check run again and passed" if hook.revalidated else "registered already, valid")
            out.append(f"webhook {hook.webhook.url}: {how} (id {hook.webhook.id})")
            out.extend(f"note: the app also has webhook {w.id} for {w.url} ({'valid' if w.valid else 'invalid'}); "
                       "delete it in the developer portal if nothing uses it" for w in hook.others)
        elif self.webhook_id:
            out.append(f"no webhook_url set: subscriptions deliver to webhook {self.webhook_id} as configured")
        else:
            out.append("no webhook_url set: the subscriptions deliver to the activity stream only")
        who = f"@{self.handle} ({self.user_id})" if self.handle else self.user_id
        sync = self.subscriptions
        target = f" to webhook {self.webhook_id}" if self.webhook_id else ""
        for label, kinds in (("created", sync.created), ("now delivering" + target, sync.moved),
                             ("in place", sync.kept)):
            if kinds:
                out.append(f"subscriptions for {who} {label}: {', '.join(kinds)}")
        return out
