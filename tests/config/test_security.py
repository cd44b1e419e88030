"""Secrets and security headers: no built-in secret key, rotating credential keys, login throttling, HTTPS
cookies and the CSP header on every response."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.test import Client
from django.utils import timezone

from caredesk.config.security import CONTENT_SECURITY_POLICY
from caredesk.connectors.crypto import CredentialsUnreadable, decrypt_json, encrypt_json
from caredesk.connectors.models import ConnectorInstallation
from factories import make_case, make_installation, make_user

pytestmark = pytest.mark.django_db


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "CAREDESK_SECRET_KEY"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


def test_no_built_in_secret_key_even_for_the_asgi_app_served_directly() -> None:
    result = _python("import caredesk.config.asgi")
    assert result.returncode != 0
    assert "CAREDESK_SECRET_KEY is not set" in result.stderr
    assert "ImproperlyConfigured" in result.stderr
    assert _python("import caredesk.config.asgi", CAREDESK_SECRET_KEY="k" * 40).returncode == 0


def test_commands_against_a_database_url_need_the_secret_key(tmp_path) -> None:
    result = _python("from caredesk.cli import main; raise SystemExit(main(['user', 'list', '--data-dir', "
                     f"{str(tmp_path)!r}]))")
    assert result.returncode == 2
    assert "CAREDESK_SECRET_KEY is not set" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "secret_key").exists(), "no per-machine key for a shared database"


def test_credentials_rotate_to_a_new_key(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CAREDESK_CREDENTIALS_KEYS = [old]
    installation = make_installation()
    installation.set_credentials({"token": "s3cret"})
    installation.save()
    legacy = make_installation()
    settings.CAREDESK_CREDENTIALS_KEYS = []  # the demo's derived key
    legacy.set_credentials({"token": "from-the-demo"})
    legacy.save()

    # A new key in front: everything is still readable, new writes use it, rotation moves every row to it.
    settings.CAREDESK_CREDENTIALS_KEYS = [new, old]
    assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials() == {"token": "s3cret"}
    assert ConnectorInstallation.objects.get(pk=legacy.pk).get_credentials() == {"token": "from-the-demo"}
    from caredesk.connectors.actions import do_rotate_credentials

    for row in ConnectorInstallation.objects.exclude(credentials_encrypted=""):
        do_rotate_credentials(row)
    only_new = Fernet(new.encode())
    for pk, token in ((installation.pk, "s3cret"), (legacy.pk, "from-the-demo")):
        stored = ConnectorInstallation.objects.get(pk=pk).credentials_encrypted
        assert only_new.decrypt(stored.encode()) == f'{{"token": "{token}"}}'.encode()

    # Another machine's keys open nothing, and say so clearly.
    settings.CAREDESK_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    settings.SECRET_KEY = "another-machine-" * 4
    with pytest.raises(CredentialsUnreadable, match="credentials cannot be decrypted"):
        ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()
    assert decrypt_json(encrypt_json({"a": 1})) == {"a": 1}


def test_forty_wrong_passwords_lock_the_login_until_the_cool_off_ends(settings) -> None:
    make_user("ana", password="the-right-password")
    browser = Client()

    def login(password: str) -> int:
        return browser.post("/login/", {"username": "ana", "password": password}).status_code

    statuses = [login(f"wrong-{i}") for i in range(40)]
    assert statuses[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert set(statuses[settings.AXES_FAILURE_LIMIT :]) == {429}
    refused = browser.post("/login/", {"username": "ana", "password": "the-right-password"})
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in browser.session
    # Another person at the same address is not locked out by Ana's attempts.
    make_user("ben", password="bens-password-1")
    assert Client().post("/login/", {"username": "ben", "password": "bens-password-1"}).status_code == 302

    # When the cool-off has passed, the right password works again, and a success resets the count.
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert login("the-right-password") == 302
    assert not AccessAttempt.objects.filter(username="ana").exists()


def test_https_turns_on_secure_cookies_and_hsts() -> None:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'caredesk.config.settings'; "
        "from django.conf import settings as s; django.setup(); "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)"
    )
    assert _python(code, CAREDESK_SECRET_KEY="k" * 40, CAREDESK_HTTPS="1").stdout.split() == [
        "True", "True", "31536000"
    ]
    assert _python(code, CAREDESK_SECRET_KEY="k" * 40).stdout.split() == ["False", "False", "0"]


def test_every_response_carries_the_content_security_policy(settings, tmp_path) -> None:
    settings.STATIC_ROOT = tmp_path
    agent = make_user("ana")
    case = make_case(make_installation(), "<script>alert(1)</script> my bill is wrong")
    browser = Client()
    browser.force_login(agent)
    hx = {"HX-Request": "true"}
    responses = {
        "login page": Client().get("/login/"),
        "redirect to login": Client().get("/"),
        "inbox": browser.get("/"),
        "case list": browser.get("/cases/", headers=hx),
        "case page": browser.get(f"/cases/{case.pk}/"),
        "live fragment": browser.get(f"/cases/{case.pk}/live"),
        "presence fragment": browser.get(f"/cases/{case.pk}/presence"),
        "422 echoing text": browser.post(f"/cases/{case.pk}/notes", {"text": ""}, headers=hx),
        "404": browser.get("/cases/999999999/"),
        "api docs": browser.get("/api/docs"),
        "api json": browser.get("/api/cases"),
        "api 401": Client().get("/api/cases"),
        "healthz": Client().get("/healthz"),
        "static file": Client().get("/static/caredesk/inbox.css"),
    }
    for name, response in responses.items():
        assert response.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, name
        if hasattr(response, "streaming_content"):
            response.close()
    assert responses["422 echoing text"].status_code == 422
    assert responses["404"].status_code == 404
    assert responses["static file"].status_code == 200
