from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from caredesk.cases.models import Case, Post
from caredesk.connectors.models import ConnectorInstallation
from factories import make_brand, make_installation

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def test_openapi_schema_lists_the_endpoints() -> None:
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    methods = {path: set(ops) for path, ops in schema["paths"].items()}
    assert methods == {
        "/api/cases": {"get"},
        "/api/cases/{case_id}": {"get", "patch"},
        "/api/cases/{case_id}/replies": {"post"},
        "/api/cases/{case_id}/assign": {"post"},
        "/api/cases/{case_id}/resolve": {"post"},
        "/api/cases/{case_id}/reopen": {"post"},
        "/api/cases/{case_id}/notes": {"post"},
        "/api/replies/{reply_id}": {"get"},
        "/api/posts/{post_id}/labels": {"post"},
    }
    reply = schema["paths"]["/api/cases/{case_id}/replies"]["post"]
    assert reply["operationId"] == "queue_reply"
    assert {"200", "202", "404", "422"} <= set(reply["responses"])
    assert {"in": "header", "name": "Idempotency-Key"}.items() <= reply["parameters"][1].items()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    created_at = schema["components"]["schemas"]["ReplyOut"]["properties"]["created_at"]
    assert created_at["format"] == "date-time"


def test_docs_page_uses_only_local_assets() -> None:
    response = Client().get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, "the page loads its assets from somewhere"
    assert all(url.startswith("/static/") for url in urls), urls
    assert "//" not in " ".join(urls)  # no CDN, no protocol-relative URL
    found = re.search(r'id="swagger-settings">(.*?)</script>', html, re.S)
    assert found is not None
    settings = json.loads(found.group(1))
    assert settings["url"] == "/api/openapi.json"
    assert settings["validatorUrl"] is None  # no call to validator.swagger.io either
    # The assets are there to be served, without a collectstatic step.
    for url in urls:
        asset = Client().get(url)
        assert asset.status_code == 200, url
        asset.close()


def test_healthz_counts_match_the_database(
    make_case: MakeCase, installation: ConnectorInstallation, token: str, agent: User
) -> None:
    make_case()
    make_case()
    make_case(status="resolved")
    disabled = make_installation(installation.brand)
    ConnectorInstallation.objects.filter(pk=disabled.pk).update(enabled=False)
    ConnectorInstallation.objects.filter(pk=installation.pk).update(health="ok")

    # Anonymous monitors learn only that the service and its database are up.
    anonymous = Client().get("/healthz")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert Client().get("/healthz", headers={"Authorization": "Bearer cd_wrong"}).json() == {"status": "ok"}
    # Another brand's cases and connectors are not counted for this agent.
    acme = make_installation(make_brand("Acme"))
    make_case(installation_=acme)

    expected = {
        "status": "ok",
        "posts": 3,
        "cases": 3,
        "open_cases": 2,
        "connectors": {installation.name: "ok"},
    }
    by_token = Client(headers={"Authorization": f"Bearer {token}"}).get("/healthz").json()
    health = by_token.pop("connector_health")
    assert by_token == expected
    # Health in detail, of this brand's installation only (connector_health, tested in tests/connectors/runtime).
    assert [(h["id"], h["health"], h["failed_payloads"]) for h in health] == [(installation.pk, "ok", 0)]
    browser = Client()
    browser.force_login(agent)
    response = browser.get("/healthz")
    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "connector_health"} == expected
    assert {k: v for k, v in response.json().items() if k != "connector_health"} == {
        "status": "ok",
        "posts": Post.objects.exclude(installation=acme).count(),
        "cases": 3,
        "open_cases": 2,
        "connectors": {installation.name: "ok"},
    }
    assert Post.objects.count() == 4  # with the other brand's
