"""``caredesk connector budget``: the monthly budget, the reply reserve and an installation's own prices, with a
clear refusal for each kind of bad input (and nothing changed by a refused command)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from caredesk.cli import main
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.models import ConnectorInstallation
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paid() -> ConnectorInstallation:
    return do_create_installation(make_brand("Nimbus"), "test_paid", "X (paid)", {"url": "http://127.0.0.1:9"})


def _budget(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["connector", "budget", "--data-dir", str(tmp_path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_set_a_budget_a_reserve_and_own_prices_then_remove_them(paid, tmp_path, capsys):
    code, out, _ = _budget(tmp_path, capsys, "X (paid)", "--monthly", "50", "--reserve", "5.50",
                           "--price", "post_read=0.004", "--price", "user_read=$0.02")
    assert code == 0
    assert "X (paid): monthly budget $50.00, reply reserve $5.50 (reads stop at $44.50, replies at $50.00)" in out
    assert "  post_read: $0.004 (own price; default $0.005)" in out and "  owned_read: $0.001\n" in out
    paid.refresh_from_db()
    assert (paid.monthly_budget, paid.reply_reserve) == (Decimal("50"), Decimal("5.50"))
    assert paid.price_overrides == {"post_read": "0.004", "user_read": "0.02"}
    # The reserve alone keeps the budget; a price back to its default; then no budget at all.
    assert _budget(tmp_path, capsys, "X (paid)", "--brand", paid.brand.slug, "--reserve", "1")[0] == 0
    assert _budget(tmp_path, capsys, "X (paid)", "--price", "post_read=default")[0] == 0
    paid.refresh_from_db()
    assert (paid.monthly_budget, paid.reply_reserve) == (Decimal("50"), Decimal("1"))
    assert paid.price_overrides == {"user_read": "0.02"}
    code, out, _ = _budget(tmp_path, capsys, "X (paid)", "--none")
    assert code == 0 and out.startswith("X (paid): no monthly budget")
    paid.refresh_from_db()
    assert paid.monthly_budget is None and paid.reply_reserve == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --monthly USD or --none"),
        (("--monthly", "lots"), "--monthly: 'lots' is not an amount in USD (like 50 or 12.50)"),
        (("--monthly", "-5"), "--monthly cannot be negative"),
        (("--monthly", "NaN"), "--monthly: NaN is not an amount in USD"),
        (("--monthly", "12.345"), "--monthly: at most 2 decimals (cents)"),
        (("--monthly", "1e12"), "--monthly: at most $9,999,999,999.99"),
        (("--monthly", "10", "--reserve", "20"), "the reply reserve cannot be larger than the monthly budget"),
        (("--none", "--reserve", "2"), "a reply reserve needs a monthly budget"),
        (("--reserve", "2"), "a reply reserve needs a monthly budget"),
        (("--price", "post_read"), "--price 'post_read': give OPERATION=USD"),
        (("--price", "carrier_pigeon=1"), "unknown operation 'carrier_pigeon'; the operations are dm_create,"),
        (("--price", "post_read=0.0000001"), "--price post_read: at most 6 decimals"),
        (("--price", "post_read=-1"), "--price post_read cannot be negative"),
        (("--monthly", "10", "--price", "nope=1"), "unknown operation 'nope'"),  # all or nothing
    ],
)
def test_bad_input_is_refused_clearly_and_changes_nothing(paid, tmp_path, capsys, args, message):
    code, _, err = _budget(tmp_path, capsys, "X (paid)", *args)
    assert code == 2 and message in err, err
    paid.refresh_from_db()
    assert paid.monthly_budget is None and paid.price_overrides == {}


def test_unknown_installations_and_free_platforms_are_refused(paid, tmp_path, capsys):
    code, _, err = _budget(tmp_path, capsys, "nothing here", "--monthly", "5")
    assert code == 2 and "no installation called 'nothing here'" in err
    do_create_installation(paid.brand, "replay", "free", {"brand": "nimbus", "platform": "x"})
    code, _, err = _budget(tmp_path, capsys, "free", "--price", "post_read=0.1")
    assert code == 2 and "replay declares no prices: there is nothing to override" in err
    code, out, _ = _budget(tmp_path, capsys, "free", "--monthly", "5")  # a budget is harmless there
    assert code == 0 and "prices: this platform charges nothing" in out


def test_list_shows_the_rung_the_cost_and_a_stopped_budget(paid, tmp_path, capsys):
    assert _budget(tmp_path, capsys, "X (paid)", "--monthly", "0")[0] == 0
    assert main(["connector", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\tX (paid)\ttest_paid\tenabled\tunknown\tby poll\tlast ok never\t0 posts\t" in out
    assert "$0.00 this month, forecast $0.00, budget $0.00" in out
    assert "\tmonthly budget of $0.00 reached: reads stopped until " in out
    assert main(["connector", "list", "--json", "--data-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[0]["name"] == "X (paid)" and report[0]["rung"] == "poll" and report[0]["reads_stopped"]
    assert report[0]["allowed_rungs"] == ["poll", "import"]
