"""`caredesk connector add|list|test|enable|disable` end to end, in subprocesses, on the replay provider."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import _caredesk, _fresh_database, _migrated_template, migrated_env  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def acme_env(_migrated_template: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: F811
    """One migrated database with the brand acme, shared by the refusals: a refused command changes nothing."""
    from django.db import connection

    url = _fresh_database(f"{connection.settings_dict['NAME']}_cli_acme", template=_migrated_template)
    env = {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(tmp_path_factory.mktemp("acme"))}
    assert _caredesk("brand", "create", "acme", env=env).returncode == 0
    return env


def test_add_list_test_disable_enable(migrated_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    env = migrated_env
    assert _caredesk("brand", "create", "acme", env=env).returncode == 0
    config = tmp_path / "replay.json"
    config.write_text('{"brand": "nimbus", "platform": "mastodon", "speed": 50}')
    added = _caredesk("connector", "add", "replay", "--brand", "acme", "--name", "Acme on Mastodon (replay)",
                      "--config", f"@{config}", env=env)
    assert added.returncode == 0, added.stderr
    assert "installation 'Acme on Mastodon (replay)' (replay) added for acme" in added.stdout

    listed = _caredesk("connector", "list", env=env)
    assert listed.returncode == 0
    assert ("acme\tAcme on Mastodon (replay)\treplay\tenabled\tunknown\tby poll\tlast ok never\t0 posts\tno cost"
            in listed.stdout)

    tested = _caredesk("connector", "test", "Acme on Mastodon (replay)", env=env)
    assert tested.returncode == 0, tested.stderr
    assert "not stored" in tested.stdout and tested.stdout.rstrip().endswith("ok")
    assert "0 posts" in _caredesk("connector", "list", env=env).stdout  # the test stored nothing

    changed = _caredesk("connector", "configure", "Acme on Mastodon (replay)", "--config", '{"speed": 5}', env=env)
    assert changed.returncode == 0, changed.stderr
    assert "settings changed" in changed.stdout
    refused = _caredesk("connector", "configure", "Acme on Mastodon (replay)", "--config", '{"speed": 0}', env=env)
    assert refused.returncode == 2 and "invalid config for replay: speed" in refused.stderr
    assert _caredesk("connector", "configure", "Acme on Mastodon (replay)", env=env).returncode == 2

    assert "disabled" in _caredesk("connector", "disable", "Acme on Mastodon (replay)", env=env).stdout
    assert "\tdisabled\t" in _caredesk("connector", "list", "--brand", "acme", env=env).stdout
    assert "enabled" in _caredesk("connector", "enable", "Acme on Mastodon (replay)", "--brand", "acme",
                                  env=env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "replay", "--brand", "nowhere", "--name", "x"), "no brand 'nowhere'"),
        (("add", "replay", "--brand", "acme", "--name", "x", "--config", "{not json"), "--config is not valid JSON"),
        (("add", "replay", "--brand", "acme", "--name", "x", "--config", "[1]"), "must be a JSON object"),
        (("add", "replay", "--brand", "acme", "--name", "x", "--config", '{"speed": -1}'), "invalid config"),
        (("add", "replay", "--brand", "acme", "--name", "x", "--credentials", '{"token": "s3cret"}'),
         "invalid credentials"),
        (("add", "nosuch", "--brand", "acme", "--name", "x"), "unknown connector provider 'nosuch'"),
        (("test", "nothing here"), "no installation called 'nothing here'"),
        (("enable", "nothing here"), "no installation called 'nothing here'"),
    ],
)
def test_refusals_are_clear(acme_env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    env = acme_env
    result = _caredesk("connector", *args, env=env)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr  # a credential is never echoed back
