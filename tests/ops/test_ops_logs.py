"""Structured logs: JSON lines with the request id and the context at hand."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.test import Client

from caredesk.ops.logs import JsonFormatter, log_context


def _capture() -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("caredesk.test_ops_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream, handler


def test_a_line_is_json_with_context_extra_and_exception() -> None:
    logger, stream, handler = _capture()
    try:
        with log_context(installation_id=7):
            logger.info("polled %s posts <b>", 3, extra={"rung": "poll"})
            try:
                raise ValueError("bad page")
            except ValueError:
                logger.exception("poll failed")
        logger.info("after")
    finally:
        logging.getLogger("caredesk.test_ops_logs").removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert first["message"] == "polled 3 posts <b>"
    assert (first["level"], first["logger"], first["installation_id"], first["rung"]) == (
        "info", "caredesk.test_ops_logs", 7, "poll")
    assert first["ts"].endswith("+00:00")
    assert second["installation_id"] == 7 and "ValueError: bad page" in second["exc"]
    assert "installation_id" not in third


@pytest.mark.django_db
def test_each_request_gets_an_id_in_its_header_and_its_log_line(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("caredesk.request").setLevel(logging.INFO)
    try:
        with caplog.at_level(logging.INFO, logger="caredesk.request"):
            given = Client().get("/healthz", headers={"X-Request-ID": "lb-1234"})
            made = Client().get("/healthz", headers={"X-Request-ID": "not sane\nid"})
    finally:
        logging.getLogger("caredesk.request").setLevel(logging.WARNING)
    assert given["X-Request-ID"] == "lb-1234"
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"] != "not sane\nid"
    records = [r for r in caplog.records if r.name == "caredesk.request"]
    assert [(r.path, r.status) for r in records] == [("/healthz", 200), ("/healthz", 200)]  # type: ignore[attr-defined]


def test_the_json_format_is_chosen_by_the_environment_and_a_bad_one_refused() -> None:
    code = ("import django, logging; django.setup(); from django.conf import settings; "
            "logging.getLogger('caredesk.x').warning('hello'); print(settings.CAREDESK_LOG_FORMAT)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "caredesk.config.settings", "CAREDESK_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1])["message"] == "hello"
    env["CAREDESK_LOG_FORMAT"] = "xml"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "CAREDESK_LOG_FORMAT must be plain or json" in done.stderr


def test_a_request_that_finds_the_pool_exhausted_answers_503() -> None:
    from django.db import OperationalError
    from django.test import RequestFactory
    from psycopg_pool import PoolTimeout

    from caredesk.ops.logs import RequestIdMiddleware

    middleware = RequestIdMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    request = RequestFactory().get("/cases/")
    try:  # as Django raises it: its OperationalError, caused by psycopg_pool's
        try:
            raise PoolTimeout("couldn't get a connection after 10.00 sec")
        except PoolTimeout as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as wrapped:
        response = middleware.process_exception(request, wrapped)
    assert response is not None and response.status_code == 503 and response["Retry-After"] == "1"
    assert middleware.process_exception(request, ValueError("a bug")) is None
