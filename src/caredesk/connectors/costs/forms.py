"""The budget form of the Connections page's edit screen: monthly budget, reply reserve and the installation's own
price of each operation its platform charges for. Amounts are checked as the CLI checks them
(:func:`~caredesk.connectors.costs.prices.parse_usd`); the writes are ``ledger.do_set_budget``/``do_set_prices``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from caredesk.connectors.costs.prices import MAX_PRICE, PRICE_PLACES, PriceTable, parse_usd
from caredesk.connectors.models import ConnectorInstallation


def _usd(value: str, what: str, **kw: Any) -> Decimal | None:
    if not value.strip():
        return None
    try:
        return parse_usd(value, what, **kw)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None


class BudgetForm(forms.Form):
    monthly_budget = forms.CharField(required=False, max_length=40, label="Monthly budget (USD)",
                                     help_text="Reads stop before it is passed. Empty: no budget.")
    reply_reserve = forms.CharField(required=False, max_length=40, label="Reply reserve (USD)",
                                    help_text="Part of the budget kept for replies: reads stop that much earlier.")

    def __init__(self, data: Any = None, *, installation: ConnectorInstallation, table: PriceTable | None) -> None:
        overrides = installation.price_overrides or {}
        initial = {
            "monthly_budget": "" if installation.monthly_budget is None else f"{installation.monthly_budget:.2f}",
            "reply_reserve": f"{installation.reply_reserve:.2f}",
            **{f"price_{op}": str(value) for op, value in overrides.items()},
        }
        super().__init__(data, initial=initial, prefix="budget")
        self.operations = sorted(table.prices) if table is not None else []
        for operation in self.operations:
            self.fields[f"price_{operation.value}"] = forms.CharField(
                required=False, max_length=40, label=f"Price of {operation.value.replace('_', ' ')} (USD)",
                help_text=f"Empty: the platform's price, ${table.price(operation)}." if table else "",
                widget=forms.TextInput(attrs={"placeholder": str(table.price(operation)) if table else ""}),
            )

    def clean_monthly_budget(self) -> Decimal | None:
        return _usd(self.cleaned_data["monthly_budget"], "the monthly budget")

    def clean_reply_reserve(self) -> Decimal:
        return _usd(self.cleaned_data["reply_reserve"], "the reply reserve") or Decimal(0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for operation in self.operations:
            name = f"price_{operation.value}"
            if name in cleaned:
                try:
                    cleaned[name] = _usd(cleaned[name], f"the price of {operation.value}", places=PRICE_PLACES,
                                         maximum=MAX_PRICE)
                except forms.ValidationError as exc:
                    self.add_error(name, exc)
        return cleaned

    def prices(self) -> dict[str, Decimal | None]:
        """Each operation's own price (None: the platform's)."""
        return {op.value: self.cleaned_data.get(f"price_{op.value}") for op in self.operations}
