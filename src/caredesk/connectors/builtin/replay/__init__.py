"""Replay: a simulated platform that plays a script of fictional posts for demos and load tests.

The bundled script (``demo_posts.jsonl``) was written for caredesk; see the README beside it.
"""

from caredesk.connectors.builtin.replay.brands import BRAND_ACCOUNTS, BRAND_HANDLES, DEMO_BRANDS, DemoBrand
from caredesk.connectors.builtin.replay.provider import (
    LOOP_PAUSE_S,
    MAX_BATCH,
    ReplayConfig,
    ReplayCursor,
    ReplayProvider,
    loop_external_id,
)
from caredesk.connectors.builtin.replay.script import Script, ScriptPost, load_script, parse_script

__all__ = [
    "BRAND_ACCOUNTS",
    "BRAND_HANDLES",
    "DEMO_BRANDS",
    "LOOP_PAUSE_S",
    "MAX_BATCH",
    "DemoBrand",
    "ReplayConfig",
    "ReplayCursor",
    "ReplayProvider",
    "Script",
    "ScriptPost",
    "load_script",
    "loop_external_id",
    "parse_script",
]
