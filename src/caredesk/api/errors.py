"""How failures become responses: JSON ``{"detail": "<message>"}``, never a 500 for a caller's mistake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja.errors import AuthenticationError, ValidationError

from caredesk.api.auth import BAD_TOKEN_ATTR
from caredesk.cases.actions import CaseActionError, CaseConflictError

if TYPE_CHECKING:
    from ninja import NinjaAPI

AUTH_HELP = "send 'Authorization: Bearer <token>' (`caredesk token create NAME` prints one) or log in"


_SOURCES = {"body", "query", "path", "header", "cookie", "form"}
# Handler arguments that hold a whole schema; every router names them so.
_SCHEMA_ARGUMENTS = {"payload", "filters"}


def _location(error: dict[str, Any]) -> str:
    """``("body", "payload", "text")`` → ``"text"``: the field the caller sent, without ninja's plumbing."""
    loc = [str(part) for part in error.get("loc", ())]
    source = loc[0] if loc and loc[0] in _SOURCES else "request"
    if loc and loc[0] in _SOURCES:
        loc = loc[1:]
    if len(loc) > 1 and loc[0] in _SCHEMA_ARGUMENTS:
        loc = loc[1:]
    elif loc and loc[0] in _SCHEMA_ARGUMENTS:
        # The whole schema is wrong: a body that is not an object ("body: ..."), or one of several shapes told
        # apart by a field ("task") whose value matches none of them.
        discriminator = str(error.get("ctx", {}).get("discriminator", "")).strip("'")
        loc = [discriminator if error.get("type") == "union_tag_invalid" and discriminator else source]
    return ".".join(loc) or "request"


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(AuthenticationError)
    def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        if getattr(request, BAD_TOKEN_ATTR, False):
            message = "invalid API token: it is unknown, revoked or its user is inactive"
        else:
            message = f"authentication required: {AUTH_HELP}"
        response = api.create_response(request, {"detail": message}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="caredesk"'
        return response

    @api.exception_handler(ValidationError)
    def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        errors = [
            {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
            for error in exc.errors
        ]
        message = "; ".join(f"{_location(error)}: {error.get('msg', 'invalid')}" for error in exc.errors)
        return api.create_response(request, {"detail": message, "errors": errors}, status=422)

    @api.exception_handler(CaseActionError)
    def on_case_action_error(request: HttpRequest, exc: CaseActionError) -> HttpResponse:
        # Actions raise this for requests they refuse (empty or too long reply, unknown status...); the
        # message is written for the person who made the request.
        return api.create_response(request, {"detail": str(exc)}, status=422)

    @api.exception_handler(CaseConflictError)
    def on_case_conflict(request: HttpRequest, exc: CaseConflictError) -> HttpResponse:
        # A well-formed request that the case's current state refuses (reopening an open case, an idempotency
        # key that belongs to another case): 409 Conflict, since sending it again later may well succeed.
        return api.create_response(request, {"detail": str(exc)}, status=409)

    @api.exception_handler(Http404)
    def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc) or "not found"}, status=404)

