"""`caredesk connector authorize reddit`: Reddit's OAuth for an installed or web app at a terminal, against the
fake server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from fake_reddit import CLIENT_ID, CODE, REFRESH, FakeReddit, config_for


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "caredesk", "connector", "authorize", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env={**os.environ})


def test_authorize_and_write_the_refresh_token(fake: FakeReddit, tmp_path: Path) -> None:
    out = tmp_path / "reddit.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(config_for(fake)))
    done = _run("reddit", "--client-id", CLIENT_ID, "--redirect-uri", "http://127.0.0.1:9/cb", "--config",
                f"@{config}", "--out", str(out), stdin=f"{CODE}\n")
    assert done.returncode == 0, done.stderr
    assert "Reddit must approve API access first" in done.stdout
    assert f"{fake.url}/api/v1/authorize?client_id={CLIENT_ID}&response_type=code&state=" in done.stdout
    assert "duration=permanent" in done.stdout and f"--config @{config} --credentials @{out}" in done.stdout
    stored = json.loads(out.read_text())
    assert stored["refresh_token"] == REFRESH and stored["client_id"] == CLIENT_ID
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [token] = fake.requests_to("POST", "/api/v1/access_token")
    assert token.form == {"grant_type": "authorization_code", "code": CODE, "redirect_uri": "http://127.0.0.1:9/cb"}
    assert token.headers["user-agent"] == "server:com.example.caredesk:1.0.0 (by /u/care_ops)"


def test_refusals(fake: FakeReddit, tmp_path: Path) -> None:
    config = json.dumps(config_for(fake))
    missing = _run("reddit", "--config", config, "--out", str(tmp_path / "a.json"))
    assert missing.returncode == 2 and "--client-id" in missing.stderr
    wrong = _run("reddit", "--client-id", CLIENT_ID, "--redirect-uri", "http://127.0.0.1:9/cb", "--config", config,
                 "--out", str(tmp_path / "b.json"), stdin="not-the-code\n")
    assert wrong.returncode == 1 and "did not accept the code" in wrong.stderr and "Traceback" not in wrong.stderr
    assert not (tmp_path / "b.json").exists()
    bad_config = _run("reddit", "--client-id", CLIENT_ID, "--redirect-uri", "x", "--config", "{}",
                      "--out", str(tmp_path / "c.json"))
    assert bad_config.returncode == 2 and "app_id" in bad_config.stderr
