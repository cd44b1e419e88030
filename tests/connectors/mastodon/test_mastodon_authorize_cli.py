"""`caredesk connector authorize mastodon`: the OAuth flow at a terminal, against the fake server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from fake_mastodon import FakeMastodon


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "caredesk", "connector", "authorize", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def test_register_authorize_and_write_the_credentials(fake: FakeMastodon, tmp_path: Path) -> None:
    out = tmp_path / "mastodon.json"
    done = _run("mastodon", "--instance", fake.url, "--out", str(out), stdin="the-code\n")
    assert done.returncode == 0, done.stderr
    assert f"{fake.url}/oauth/authorize?response_type=code&client_id=" in done.stdout
    assert "--credentials @" in done.stdout
    stored = json.loads(out.read_text())
    assert set(stored) == {"access_token", "client_id", "client_secret"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [token_request] = fake.requests_to("/oauth/token")
    assert token_request.form["code"] == "the-code"


def test_refusals(fake: FakeMastodon, tmp_path: Path) -> None:
    existing = tmp_path / "there.json"
    existing.write_text("{}")
    assert "exists" in _run("mastodon", "--instance", fake.url, "--out", str(existing)).stderr
    other = _run("bluesky", "--instance", fake.url, "--out", str(tmp_path / "b.json"))
    assert other.returncode == 2 and "app password" in other.stderr
    plain = _run("mastodon", "--instance", "http://example.org", "--out", str(tmp_path / "c.json"))
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    empty = _run("mastodon", "--instance", fake.url, "--out", str(tmp_path / "d.json"), stdin="\n")
    assert empty.returncode == 2 and "no code" in empty.stderr and not (tmp_path / "d.json").exists()
