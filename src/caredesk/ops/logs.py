"""Structured logs: one JSON object a line (``CAREDESK_LOG_FORMAT=json``), with the request or installation at hand.

The standard library's ``logging`` with a formatter of our own, rather than structlog or python-json-logger: every
module already logs through ``logging.getLogger(__name__)``, and what a line carries (time, level, logger,
message, exception, and the context below) takes thirty lines, with no new dependency to keep up with.

Context is kept in a :class:`~contextvars.ContextVar`, so it follows a request through ``sync_to_async`` and
asyncio tasks: :class:`RequestIdMiddleware` puts a ``request_id`` there (the caller's ``X-Request-ID`` when it is
sane, else a new one, echoed in the response), and :func:`log_context` adds fields such as ``installation_id``
around a poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from psycopg_pool import PoolTimeout

_context: ContextVar[dict[str, Any]] = ContextVar("caredesk_log_context", default={})  # noqa: B039 - never mutated
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
request_log = logging.getLogger("caredesk.request")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written in this block (this task or thread, and what it calls)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the context
    fields, any ``extra={...}`` fields, and ``exc`` with the traceback."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class RequestIdMiddleware:
    """Gives each request a ``request_id`` in the log context and the ``X-Request-ID`` response header, and logs
    one ``caredesk.request`` line per request (method, path, status, milliseconds to the response's headers).

    A request that waited its ``CAREDESK_DB_POOL_TIMEOUT`` for a pooled connection in vain answers 503 with
    ``Retry-After``, not a 500: the server is busy, nothing is broken, and a load balancer or browser may retry.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        with self._context(request) as finish:
            return finish(self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        handler: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        with self._context(request) as finish:
            return finish(await handler(request))

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, PoolTimeout) and not isinstance(exception.__cause__, PoolTimeout):
            return None
        request_log.warning("no database connection free in the pool: %s %s answered 503", request.method,
                            request.path)
        response = HttpResponse("The desk is busy; try again in a moment.\n", status=503, content_type="text/plain")
        response["Retry-After"] = "1"
        return response

    @contextlib.contextmanager
    def _context(self, request: HttpRequest) -> Iterator[Callable[[HttpResponseBase], HttpResponseBase]]:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        started = time.perf_counter()

        def finish(response: HttpResponseBase) -> HttpResponseBase:
            response["X-Request-ID"] = request_id
            request_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
                "method": request.method, "path": request.path, "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1)})
            return response

        with log_context(request_id=request_id):
            yield finish
