"""The REST API: one ``NinjaAPI`` at ``/api/``; docs at ``/api/docs``, schema at ``/api/openapi.json``."""

from __future__ import annotations

from ninja import NinjaAPI, Swagger
from ninja.operation import Operation

from caredesk.api.auth import SessionAuth, TokenAuth
from caredesk.api.cases.router import router as cases_router
from caredesk.api.errors import install_error_handlers
from caredesk.api.posts.router import router as posts_router
from caredesk.api.replies.router import router as replies_router


class CaredeskAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # The handler's name ("list_cases", "queue_reply"): unique, and what generated clients will call.
        return operation.view_func.__name__


api = CaredeskAPI(
    title="caredesk API",
    version="1",
    description=(
        "Cases, replies, notes and label corrections of the caredesk social customer care desk. Authenticate with "
        "`Authorization: Bearer <token>` (`caredesk token create NAME` prints one), or use this page "
        "while logged in to the desk. All datetimes are ISO 8601 in UTC. Errors are "
        "`{\"detail\": \"<message>\"}`."
    ),
    urls_namespace="api",
    # Swagger UI's assets come from django-ninja's own static files ("ninja" is in INSTALLED_APPS); with no
    # validator URL it does not ask validator.swagger.io to check the schema either: the page works offline.
    docs=Swagger(settings={"validatorUrl": None}),
    # Order matters: a bearer token is tried first, so token requests never meet the session's CSRF check.
    auth=[TokenAuth(), SessionAuth()],
)
install_error_handlers(api)
api.add_router("/cases", cases_router)
api.add_router("/replies", replies_router)
api.add_router("/posts", posts_router)
