"""The fictional brands of the bundled demo file and the platform accounts they answer from.

The demo setup registers ``account_ids`` as an installation's own accounts: posts by them in the file are the
brand's earlier replies, which caredesk must recognise as ours and never turn into new work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class DemoBrand:
    key: str
    name: str
    handle: str
    account_ids: tuple[str, ...]
    description: str


DEMO_BRANDS: Mapping[str, DemoBrand] = MappingProxyType(
    {
        "nimbus": DemoBrand(
            key="nimbus",
            name="Nimbus",
            handle="NimbusCare",
            account_ids=("brand-nimbus",),
            description="Cable, internet and phone provider",
        ),
        "aerolark": DemoBrand(
            key="aerolark",
            name="AeroLark",
            handle="AeroLarkHelp",
            account_ids=("brand-aerolark",),
            description="Airline",
        ),
        "pennywise": DemoBrand(
            key="pennywise",
            name="PennyWise",
            handle="PennyWiseBank",
            account_ids=("brand-pennywise",),
            description="Retail bank",
        ),
    }
)

BRAND_ACCOUNTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {key: brand.account_ids for key, brand in DEMO_BRANDS.items()}
)
BRAND_HANDLES: Mapping[str, str] = MappingProxyType({key: brand.handle for key, brand in DEMO_BRANDS.items()})
