"""Connections for an admin: which platforms each of their brands listens on, how each is doing, and adding,
testing, enabling and disabling them. Only a brand's admins (and site owners) see its connections; any other
installation id answers 404. The work is in :mod:`caredesk.connectors.setup` and ``actions``; these stay thin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from caredesk.accounts.models import Brand
from caredesk.cases.access import Right, brand_ids_with
from caredesk.connectors.actions import do_set_enabled, lock_installation
from caredesk.connectors.base import ConnectorError
from caredesk.connectors.costs.forms import BudgetForm
from caredesk.connectors.costs.ledger import do_set_budget, do_set_prices
from caredesk.connectors.crypto import CredentialsUnreadable
from caredesk.connectors.health import connector_health, connectors_health
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class
from caredesk.connectors.setup import (
    PlatformUnreachable,
    SetupRefused,
    add_connection,
    listening_providers,
    reconnect_account,
    test_connection,
    update_connection,
)
from caredesk.connectors.setup_forms import AddConnectionForm, collected, model_form
from caredesk.inbox.views import agent_required


def _admin_brands(request: HttpRequest) -> list[Brand]:
    """The brands whose connections this person manages; 404 when none (the page is not theirs to know of)."""
    allowed = brand_ids_with(cast(User, request.user), Right.ADMINISTER)
    brands = Brand.objects.order_by("name")
    if allowed is not None:
        brands = brands.filter(pk__in=allowed)
    found = list(brands)
    if not found:
        raise Http404("no such page")
    return found


def _installation(request: HttpRequest, installation_id: int) -> ConnectorInstallation:
    brands = _admin_brands(request)
    found = ConnectorInstallation.objects.select_related("brand").filter(pk=installation_id,
                                                                         brand__in=brands).first()
    if found is None:
        raise Http404("no such connection")
    return found


def _provider_forms(provider_key: str, data: Any = None) -> tuple[Any, Any, Any]:
    cls = get_provider_class(provider_key)
    return cls, model_form(cls.config_model, "config", data), model_form(cls.credentials_model, "credentials", data)


def _page(request: HttpRequest, form: AddConnectionForm | None = None, status: int = 200, **extra: Any) -> HttpResponse:
    brands = _admin_brands(request)
    providers = listening_providers()
    form = form or AddConnectionForm(brands=[(b.pk, b.name) for b in brands], providers=providers)
    chosen = form.data.get("provider") if form.is_bound else (providers[0][0] if providers else None)
    fields = None
    if chosen in dict(providers):
        cls, config_form, credentials_form = _provider_forms(str(chosen), form.data if form.is_bound else None)
        fields = {"config": config_form, "credentials": credentials_form, "notice": cls.setup_notice}
    installations = (
        ConnectorInstallation.objects.select_related("brand").filter(brand__in=brands).order_by("brand__name", "name")
    )
    rows = list(installations)
    health = connectors_health(rows)
    for installation in rows:
        installation.health_report = health[installation.pk]  # type: ignore[attr-defined]
    stopped = [(i, health[i.pk]["reads_stopped_reason"]) for i in rows if health[i.pk]["reads_stopped"]]
    context = {"brands": brands, "installations": rows, "form": form, "fields": fields, "stopped": stopped, **extra}
    return render(request, "connectors/connections.html", context, status=status)


@never_cache
@require_GET
@agent_required
def connections(request: HttpRequest) -> HttpResponse:
    return _page(request, added=request.GET.get("added", ""), changed=request.GET.get("changed", ""))


@never_cache
@require_GET
@agent_required
def connection_fields(request: HttpRequest) -> HttpResponse:
    """The config and credentials fields of one provider (swapped in when the admin picks a platform)."""
    _admin_brands(request)
    provider_key = request.GET.get("provider", "")
    if provider_key not in dict(listening_providers()):
        raise Http404("no such platform")
    cls, config_form, credentials_form = _provider_forms(provider_key)
    return render(request, "connectors/_fields.html",
                  {"fields": {"config": config_form, "credentials": credentials_form, "notice": cls.setup_notice}})


@require_POST
@agent_required
def connection_add(request: HttpRequest) -> HttpResponse:
    brands = _admin_brands(request)
    form = AddConnectionForm(request.POST, brands=[(b.pk, b.name) for b in brands], providers=listening_providers())
    if not form.is_valid():
        return _page(request, form, status=422)
    cls, config_form, credentials_form = _provider_forms(form.cleaned_data["provider"], request.POST)
    if not (config_form.is_valid() and credentials_form.is_valid()):
        return _page(request, form, status=422, error="check the highlighted fields")
    brand = next(b for b in brands if b.pk == form.cleaned_data["brand"])
    try:
        installation = add_connection(
            brand, form.cleaned_data["provider"], form.cleaned_data["name"],
            collected(config_form, cls.config_model), collected(credentials_form, cls.credentials_model),
            check=request.POST.get("check", "on") != "off",
        )
    except (SetupRefused, PlatformUnreachable) as exc:
        return _page(request, form, status=422, error=str(exc))
    return redirect(f"{reverse('connectors:connections')}?added={installation.pk}")


@require_POST
@agent_required
def connection_enabled(request: HttpRequest, installation_id: int) -> HttpResponse:
    installation = _installation(request, installation_id)
    with transaction.atomic():
        do_set_enabled(installation, request.POST.get("enabled") == "1")
    return redirect("connectors:connections")


@require_POST
@agent_required
def connection_test(request: HttpRequest, installation_id: int) -> HttpResponse:
    installation = _installation(request, installation_id)
    try:
        lines, ok = [*test_connection(installation).lines(), "ok"], True
    except (SetupRefused, PlatformUnreachable) as exc:
        lines, ok = [str(exc)], False
    return _page(request, tested=installation.pk, test_lines=lines, test_ok=ok)


def _budget_form(installation: ConnectorInstallation, data: Any = None) -> BudgetForm:
    try:
        table = get_provider_class(installation.provider_key).prices
    except ConnectorError:
        table = None
    return BudgetForm(data, installation=installation, table=table)


def _edit_page(request: HttpRequest, installation: ConnectorInstallation, data: Any = None, status: int = 200,
               error: str = "", budget_form: BudgetForm | None = None, budget_error: str = "") -> HttpResponse:
    cls = get_provider_class(installation.provider_key)
    config_form = model_form(cls.config_model, "config", data, installation.config)
    credentials_form = model_form(cls.credentials_model, "credentials", data, all_optional=True)
    context = {"installation": installation, "fields": {"config": config_form, "credentials": credentials_form,
                                                         "notice": cls.setup_notice},
               "error": error, "budget_form": budget_form or _budget_form(installation),
               "budget_error": budget_error, "health": connector_health(installation)}
    return render(request, "connectors/edit.html", context, status=status)


@require_POST
@agent_required
def connection_budget(request: HttpRequest, installation_id: int) -> HttpResponse:
    """Set a connection's monthly budget, reply reserve and own prices (its brand's admins only; all or nothing)."""
    installation = _installation(request, installation_id)
    form = _budget_form(installation, request.POST)
    if not form.is_valid():
        return _edit_page(request, installation, status=422, budget_form=form,
                          budget_error="check the highlighted amounts")
    try:
        with transaction.atomic():
            locked = lock_installation(installation.pk)
            do_set_budget(locked, form.cleaned_data["monthly_budget"], form.cleaned_data["reply_reserve"])
            if form.operations:
                do_set_prices(locked, form.prices())
    except ConnectorError as exc:
        return _edit_page(request, installation, status=422, budget_form=form, budget_error=str(exc))
    return redirect(f"{reverse('connectors:connections')}?changed={installation.pk}")


@never_cache
@require_http_methods(["GET", "POST"])
@agent_required
def connection_edit(request: HttpRequest, installation_id: int) -> HttpResponse:
    """Change a connection's settings (its listening rules among them) or credentials; empty credential fields
    keep the stored ones. A running listener reconnects with the change."""
    installation = _installation(request, installation_id)
    if request.method == "GET":
        return _edit_page(request, installation)
    cls = get_provider_class(installation.provider_key)
    config_form = model_form(cls.config_model, "config", request.POST, installation.config)
    credentials_form = model_form(cls.credentials_model, "credentials", request.POST, all_optional=True)
    if not (config_form.is_valid() and credentials_form.is_valid()):
        return _edit_page(request, installation, request.POST, 422, "check the highlighted fields")
    new_credentials = {k: v for k, v in credentials_form.cleaned_data.items() if v not in (None, "")}
    try:
        update_connection(
            installation,
            config=collected(config_form, cls.config_model, keep_empty_lists=True),
            credentials={**installation.get_credentials(), **new_credentials} if new_credentials else None,
            check=request.POST.get("check", "on") != "off",
        )
    except (SetupRefused, PlatformUnreachable) as exc:
        return _edit_page(request, installation, request.POST, 422, str(exc))
    return redirect(f"{reverse('connectors:connections')}?changed={installation.pk}")


# -- X: connect the brand's account in the browser (OAuth 2.0 with PKCE) ------------------------------------------

def _x_session_key(installation_id: int) -> str:
    return f"x_oauth:{installation_id}"


def _x_installation(request: HttpRequest, installation_id: int) -> ConnectorInstallation:
    installation = _installation(request, installation_id)
    if installation.provider_key != "x":
        raise Http404("not an X connection")
    return installation


@require_POST
@agent_required
def x_connect(request: HttpRequest, installation_id: int) -> HttpResponse:
    """Send the admin to X to allow caredesk, with a fresh state and PKCE verifier kept in their session; X sends
    them back to :func:`x_callback`. The app's client id (and secret) are the connection's stored ones; the
    callback URL must be registered for the app on X's developer portal."""
    from caredesk.connectors.builtin.x import oauth

    installation = _x_installation(request, installation_id)
    try:
        stored = installation.get_credentials()
    except CredentialsUnreadable as exc:
        return _edit_page(request, installation, status=422, error=str(exc))
    redirect_uri = request.build_absolute_uri(reverse("connectors:x_callback", args=[installation.pk]))
    try:
        flow = oauth.start(str(stored.get("client_id") or ""), redirect_uri,
                           authorize_url=getattr(settings, "CAREDESK_X_AUTHORIZE_URL", oauth.AUTHORIZE_URL))
    except (ConnectorError, ValueError) as exc:
        return _edit_page(request, installation, status=422, error=f"{exc}: store the app's client id first")
    request.session[_x_session_key(installation.pk)] = {
        "state": flow.state, "verifier": flow.verifier.get_secret_value(), "redirect_uri": flow.redirect_uri}
    return redirect(flow.url)


@never_cache
@require_GET
@agent_required
def x_callback(request: HttpRequest, installation_id: int) -> HttpResponse:
    """Where X sends the admin back: the state must be the one kept in this session (else the link is forged or
    stale), the code is exchanged with the session's verifier, and the tokens are stored encrypted once X says
    they act as the connection's account. A state is used once, whatever the outcome."""
    from pydantic import SecretStr

    from caredesk.connectors.builtin.x import XConfig, oauth

    installation = _x_installation(request, installation_id)
    kept = request.session.pop(_x_session_key(installation.pk), None)
    if not isinstance(kept, dict):
        return _edit_page(request, installation, status=422,
                          error="no X authorization was started here (or it was used already): connect again")
    flow = oauth.Authorization(url="", state=str(kept["state"]), verifier=SecretStr(str(kept["verifier"])),
                               redirect_uri=str(kept["redirect_uri"]))
    try:
        code = oauth.code_from(request.get_full_path(), flow.state)
        stored = installation.get_credentials()
        client_id = str(stored.get("client_id") or "")
        secret = str(stored["client_secret"]) if stored.get("client_secret") else None
        api = XConfig.model_validate(installation.config).api
        with httpx.Client(timeout=20) as http:
            credentials = oauth.exchange_code(http, api, client_id, secret, code, flow, datetime.now(UTC))
        reconnect_account(installation, credentials.to_storage())
    except (ConnectorError, CredentialsUnreadable, ValueError, SetupRefused, PlatformUnreachable) as exc:
        return _edit_page(request, installation, status=422, error=str(exc))
    return redirect(f"{reverse('connectors:connections')}?changed={installation.pk}")
