"""Topic taxonomies: key -> (display name, keywords).

A brand passes its own taxonomy to :func:`caredesk.triage.classify`; the default below covers common care queues.
Keywords are one or two tokens ("no signal", "refund", "?"); the model's topic scores apply only to keys that the
default taxonomy also has, so a brand's new keys are decided by their keywords alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

Taxonomy: TypeAlias = Mapping[str, tuple[str, Sequence[str]]]

# Keys that describe the form of a post rather than its subject; a subject keyword beats them, and they fall back on
# sentiment and question rules when no subject is found.
GENERIC_TOPICS = frozenset({"praise", "question", "other"})
FALLBACK_TOPIC = "other"


def _kw(text: str) -> tuple[str, ...]:
    return tuple(k.replace("_", " ") for k in text.split())


# Read-only so a caller cannot change the shared default under everyone else; extend it with {**DEFAULT_TOPICS, ...}.
DEFAULT_TOPICS: Taxonomy = MappingProxyType(
    {
        "outage": (
            "Outage / connectivity",
            _kw(
                "outage outages blackout offline is_down went_down been_down still_down down_again down_for "
                "down_since no_internet no_signal no_service no_wifi no_connection no_cable no_phone no_power "
                "no_tv no_broadband no_network no_coverage no_data signal coverage reception connectivity "
                "disconnected keeps_dropping interruption broadband wifi internet network dial_tone 4g 5g "
                "dead_zone servers_down site_down app_down conexión conexion señal connexion réseau verbindung "
                "netz wlan störung rete segnale conexão rede sinal verbinding storing"
            ),
        ),
        "billing": (
            "Billing / payments",
            _kw(
                "bill bills billing billed charge charged charges charged_twice double_charged overcharged "
                "invoice invoices payment payments pay paid refund refunds refunded fee fees late_fee price "
                "pricing price_increase direct_debit debit credit_card transaction transactions statement "
                "autopay balance deposit overdraft interest money_back my_money cost costs expensive tariff "
                "discount promo_code coupon voucher receipt declined card_declined"
            ),
        ),
        "technical": (
            "Technical problem",
            _kw(
                "app apps website crash crashes crashed crashing bug bugs buggy glitch error errors "
                "error_message update updated install installed router modem device settings loading "
                "not_loading sync syncing version browser android iphone ios windows laptop screen button "
                "feature freezes freezing frozen lag laggy 404 500 502 503 bluetooth printer software firmware "
                "api integration reboot restart"
            ),
        ),
        "account": (
            "Account / login",
            _kw(
                "account accounts login log_in logged_out sign_in signed_out password passwords username "
                "locked_out verify verification verification_code 2fa otp two_factor authentication profile "
                "reset_password my_details personal_details hacked compromised suspended sign_up signup "
                "register registration identity"
            ),
        ),
        "cancellation": (
            "Cancellation / churn",
            _kw(
                "cancel cancelling canceling cancellation cancel_my unsubscribe close_my closing_my terminate "
                "termination switching_to switch_to port_my porting contract_end end_my notice_period "
                "early_termination competitor going_elsewhere done_with last_straw"
            ),
        ),
        "delivery": (
            "Delivery / order",
            _kw(
                "delivery deliveries deliver delivered not_delivered never_arrived hasn't_arrived not_arrived "
                "not_received arrived package parcel parcels order orders ordered shipping shipped shipment "
                "tracking tracking_number courier driver dispatch dispatched wrong_item item items return "
                "returns return_label exchange warehouse collection pickup flight flights delayed "
                "baggage luggage suitcase boarding gate booking rebook rebooked"
            ),
        ),
        "praise": (
            "Praise",
            _kw(
                "thanks thank thank_you love amazing awesome great excellent fantastic brilliant well_done "
                "kudos shoutout shout_out appreciate and_beyond best helpful superb legend top_notch 👍 ❤ 😍 "
                "👏 🎉"
            ),
        ),
        "question": (
            "Question / how-to",
            _kw(
                "? ¿ how_do how_can how_to how_long how_much is_there can_i do_you does_anyone when_will "
                "when_does what_is where_can where_is wondering any_idea question quick_question"
            ),
        ),
        "other": ("Other", ()),
    }
)


def validate_taxonomy(topics: Taxonomy) -> None:
    """Raise ValueError for a taxonomy that triage cannot use.

    Every taxonomy needs the catch-all ``"other"`` key, because ``topic`` must always be one of its keys. (Keywords
    longer than two tokens are refused when the taxonomy is indexed, by :mod:`caredesk.triage.text.phrases`.)
    """
    if FALLBACK_TOPIC not in topics:
        raise ValueError(f"a topic taxonomy needs the catch-all key {FALLBACK_TOPIC!r}")
    for key, (_name, keywords) in topics.items():
        if isinstance(keywords, str):
            raise ValueError(f"topic {key!r}: keywords must be a sequence of strings, not one string")
