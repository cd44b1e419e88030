"""Encryption at rest for connector credentials (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived from ``CAREDESK_SECRET_KEY`` (the CLI creates one per data directory), so a database dump alone
does not reveal platform tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(("caredesk.connectors.credentials:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_json(value: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))
    return result
