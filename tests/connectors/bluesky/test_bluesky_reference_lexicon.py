"""Our reply records and record keys checked by the reference implementation's own lexicon code.

Needs ``@atproto/pds`` from npm (``npm install @atproto/pds`` in a folder named by ``CAREDESK_ATPROTO_PDS_DIR``)
and node; skipped otherwise. The PDS itself does not start on Node 20 (its undici 8 needs Node 22's zstd), but its
generated lexicon validators and TID syntax checks run on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from bluesky_servers import BRAND_DID, PdsServer, ProviderFactory

from caredesk.connectors.base import NormalizedAuthor, OutboundReply
from caredesk.connectors.builtin.bluesky import tid_from_key

PDS_DIR = os.environ.get("CAREDESK_ATPROTO_PDS_DIR", "")
pytestmark = pytest.mark.skipif(
    not (PDS_DIR and (Path(PDS_DIR) / "node_modules/@atproto/pds").is_dir() and shutil.which("node")),
    reason="set CAREDESK_ATPROTO_PDS_DIR to a folder where `npm install @atproto/pds` ran",
)

CHECK = """
import { main as post } from './node_modules/@atproto/pds/dist/lexicons/app/bsky/feed/post.defs.js'
import { graphemeLen } from '@atproto/lex-data'
import { readFileSync } from 'node:fs'
const data = JSON.parse(readFileSync(0, 'utf8'))
const out = data.records.map(({ rkey, record }) => {
  const r = post.safeValidate(record)
  return { key: post.keySchema.safeValidate(rkey).success, record: r.success ? '' : r.reason.message }
})
console.log(JSON.stringify({ out, graphemes: data.texts.map(graphemeLen) }))
"""


def test_reply_records_and_keys_pass_the_reference_lexicon(
        make_provider: ProviderFactory, pds: PdsServer, now: datetime) -> None:
    root = pds.pds.add_record(BRAND_DID, "3mmojbrjwbs26", {
        "$type": "app.bsky.feed.post", "text": "Our Lyon fibre network is back.", "createdAt": "2026-11-23T10:00:00Z"})
    provider = make_provider(reply_langs=["fr", "en-GB"])
    author = NormalizedAuthor(external_id="did:plc:customer1aaaaaaaaaaaaaaa", handle="kim.bsky.social")
    texts = ["@kim.bsky.social désolé 😔 — suivez https://status.acme.example.com/lyon.", "नमस्ते क्षि " * 20,
             "🇫🇷 " * 150]
    for i, text in enumerate(texts):
        provider.send_reply(OutboundReply(f"key-{i}", text, root["uri"], author), now)
    records = [{"rkey": rkey, "record": r["value"]} for (_, _, rkey), r in pds.pds.records.items()
               if rkey != "3mmojbrjwbs26"]
    keys = [tid_from_key(f"k{i}") for i in range(500)]
    records += [{"rkey": key, "record": records[0]["record"]} for key in keys]
    script = Path(PDS_DIR) / "caredesk-check-lexicon.mjs"
    script.write_text(CHECK, encoding="utf-8")
    try:
        done = subprocess.run(["node", str(script)], input=json.dumps({"records": records, "texts": texts}),
                              cwd=PDS_DIR, capture_output=True, text=True, timeout=120, check=True)
    finally:
        script.unlink()
    result = json.loads(done.stdout)
    assert result["out"] == [{"key": True, "record": ""}] * len(records)
    rules = provider.reply_rules()
    # our count never says fewer graphemes than Bluesky's own (it may say more on Indic clusters: the safe side)
    assert all(rules.measure(t) >= n for t, n in zip(texts, result["graphemes"], strict=True))
