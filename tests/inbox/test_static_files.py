"""Static files served the way production serves them: through the ASGI application, with the pytest warning
filter turning any warning into an error. WhiteNoise's sync file response made Django's ASGI handler warn
"StreamingHttpResponse must consume synchronous iterators" on every static file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from django.test import Client

from caredesk.config.asgi import application

STATIC = Path(__file__).resolve().parents[2] / "src" / "caredesk" / "inbox" / "static" / "caredesk"


def _asgi_get(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One GET through the ASGI application, the messages collected as a server would."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *(headers or [])],
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)  # the client never disconnects during the test
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(application(scope, receive, send))
    start = sent[0]
    assert start["type"] == "http.response.start"
    headers_out = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:] if m["type"] == "http.response.body")
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body", False)
    return int(start["status"]), headers_out, body


def test_static_files_stream_through_asgi_without_a_warning() -> None:
    for name, content_type in (("inbox.css", "text/css"), ("inbox.js", "text/javascript"),
                               ("htmx.min.js", "text/javascript")):
        status, headers, body = _asgi_get(f"/static/caredesk/{name}")
        assert status == 200, name
        assert headers["content-type"].startswith(content_type), headers
        assert body == (STATIC / name).read_bytes()
        assert int(headers["content-length"]) == len(body)


def test_static_file_not_modified_and_missing_under_asgi() -> None:
    _, headers, _ = _asgi_get("/static/caredesk/inbox.css")
    status, _, body = _asgi_get("/static/caredesk/inbox.css", [(b"if-none-match", headers["etag"].encode())])
    assert (status, body) == (304, b"")
    status, _, _ = _asgi_get("/static/caredesk/no-such-file.css")
    assert status == 404


def test_static_files_still_served_to_the_sync_client() -> None:
    response = Client().get("/static/caredesk/inbox.css")
    assert response.status_code == 200
    assert b"".join(response) == (STATIC / "inbox.css").read_bytes()
