"""`caredesk connector authorize x`: OAuth 2.0 with PKCE at a terminal, against the fake X server, which checks
S256(verifier) == challenge and takes each code once. The test plays the brand's admin: it opens the printed URL
(the fake approves at once and redirects) and pastes the redirect back."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_x import ACCESS, CLIENT_ID, CLIENT_SECRET, REFRESH, FakeX

from caredesk.connectors.builtin.x import oauth


def _start(fake: FakeX, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "caredesk", "connector", "authorize", "x", "--api", fake.url,
         "--authorize-url", f"{fake.url}/i/oauth2/authorize", "--redirect-uri", "https://desk.example/x/callback",
         *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env or {**os.environ})


def _authorize_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for _ in range(5):
        line = process.stdout.readline()
        if line.startswith("http"):
            return line.strip()
    process.kill()
    _, err = process.communicate(timeout=30)
    raise AssertionError(f"no authorize URL printed: {err[-2000:]}")


def _finish(process: subprocess.Popen[str], pasted: str) -> tuple[int, str, str]:
    out, err = process.communicate(pasted + "\n", timeout=60)
    return process.returncode, out, err


def _approve(url: str) -> str:
    """The admin logs in and allows caredesk: X redirects the browser to the callback with code and state."""
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302
    return answer.headers["location"]


def test_authorize_with_pkce_and_write_the_credentials(fake: FakeX, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    process = _start(fake, "--client-id", CLIENT_ID, "--out", str(out))
    url = _authorize_url(process)
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{fake.url}/i/oauth2/authorize?response_type=code&client_id={CLIENT_ID}&")
    assert query["scope"] == "tweet.read tweet.write users.read dm.read dm.write offline.access"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == "https://desk.example/x/callback" and len(query["state"]) >= 32
    code, stdout, stderr = _finish(process, _approve(url))
    assert code == 0, stderr
    assert "authorized as @TwitterDev" in stdout and "--credentials @" in stdout
    stored = json.loads(out.read_text())
    assert stored["access_token"] == "access-2" and stored["refresh_token"] == "refresh-2"  # after code-1
    assert stored["client_id"] == CLIENT_ID and stored["client_secret"] is None
    assert stored["expires_at"] > 0 and "dm.write" in stored["scope"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [exchange] = fake.requests_to("POST", "/2/oauth2/token")
    form = {k: v[-1] for k, v in parse_qs(exchange.body.decode()).items()}
    assert form["grant_type"] == "authorization_code" and form["redirect_uri"] == "https://desk.example/x/callback"
    assert oauth.code_challenge(form["code_verifier"]) == query["code_challenge"]
    assert fake.requests_to("GET", "/2/users/me")  # whoami with the new tokens
    assert form["code_verifier"] not in stdout + stderr


def test_a_confidential_client_exchanges_with_basic_auth(fake: FakeX, tmp_path: Path) -> None:
    fake.state.confidential = True
    secret = tmp_path / "secret"
    secret.write_text(CLIENT_SECRET + "\n")
    out = tmp_path / "x.json"
    process = _start(fake, "--client-id", CLIENT_ID, "--client-secret-file", str(secret), "--out", str(out))
    code, _, stderr = _finish(process, parse_qs(urlsplit(_approve(_authorize_url(process))).query)["code"][0])
    assert code == 0, stderr  # a bare code is accepted too (PKCE still binds it to the verifier)
    assert json.loads(out.read_text())["client_secret"] == CLIENT_SECRET
    assert CLIENT_SECRET not in stderr


def test_a_forged_state_a_used_code_and_a_refusal_are_refused(fake: FakeX, tmp_path: Path) -> None:
    process = _start(fake, "--client-id", CLIENT_ID, "--out", str(tmp_path / "a.json"))
    redirect = _approve(_authorize_url(process))
    forged = redirect.replace("state=", "state=evil")
    code, _, stderr = _finish(process, forged)
    assert code == 2 and "state" in stderr and not (tmp_path / "a.json").exists()
    assert fake.requests_to("POST", "/2/oauth2/token") == []
    # A code from another authorization: its challenge is not ours, X refuses it (and it is used up).
    process = _start(fake, "--client-id", CLIENT_ID, "--out", str(tmp_path / "b.json"))
    _authorize_url(process)
    code, _, stderr = _finish(process, parse_qs(urlsplit(redirect).query)["code"][0])
    assert code == 2 and "did not accept the authorization code" in stderr and "Traceback" not in stderr
    process = _start(fake, "--client-id", CLIENT_ID, "--out", str(tmp_path / "c.json"))
    _authorize_url(process)
    code, _, stderr = _finish(process, "https://desk.example/x/callback?error=access_denied&state=x")
    assert code == 2 and "X did not authorize caredesk (access_denied)" in stderr


def test_argument_refusals(fake: FakeX, tmp_path: Path) -> None:
    existing = tmp_path / "there.json"
    existing.write_text("{}")
    for args, message in ((("--client-id", CLIENT_ID, "--out", str(existing)), "exists"),
                          (("--client-id", CLIENT_ID), "--connection NAME"),
                          (("--out", str(tmp_path / "n.json")), "client id is missing")):
        code, _, stderr = _finish(_start(fake, *args), "")
        assert code == 2 and message in stderr, stderr


@pytest.mark.django_db(transaction=True)
def test_reconnect_an_existing_connection(fake: FakeX, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli"))
    from django.db import connection
    from test_cli import _caredesk, _fresh_database

    env = {**os.environ, "DATABASE_URL": _fresh_database(f"{connection.settings_dict['NAME']}_xauth"),
           "CAREDESK_DATA_DIR": str(tmp_path)}
    assert _caredesk("migrate", env=env).returncode == 0
    assert _caredesk("brand", "create", "acme", env=env).returncode == 0
    added = _caredesk("connector", "add", "x", "--brand", "acme", "--name", "Acme on X", "--config",
                      json.dumps({"api": fake.url}), "--credentials",
                      json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID}), env=env)
    assert added.returncode == 0, added.stderr
    process = _start(fake, "--connection", "Acme on X", env=env)  # the client id is the connection's
    code, stdout, stderr = _finish(process, _approve(_authorize_url(process)))
    assert code == 0, stderr
    assert "Acme on X: connected as @TwitterDev" in stdout
    tested = _caredesk("connector", "test", "Acme on X", env=env)
    assert tested.returncode == 0 and "@TwitterDev" in tested.stdout, tested.stderr
    # The test asked X with the new token, read back decrypted from the connection.
    [new_token] = fake.state.access_tokens
    assert new_token != ACCESS
    assert fake.requests_to("GET", "/2/users/me")[-1].headers["authorization"] == f"Bearer {new_token}"
    listed = _caredesk("connector", "list", env=env)
    assert "Acme on X\tx\tenabled" in listed.stdout and new_token not in listed.stdout
