"""Encryption at rest for connector credentials (Fernet: AES-128-CBC + HMAC-SHA256), with key rotation.

The keys come from ``CAREDESK_CREDENTIALS_KEYS``, newest first: the newest encrypts, every one of them decrypts
(cryptography's MultiFernet), so a new key can be put in front and ``caredesk keys rotate`` re-encrypts every row
with it before the old one is removed. They are not the session-signing ``SECRET_KEY``, so either can change
without the other. Without the variable (the demo) a key is derived from ``SECRET_KEY``; that derived key also
stays a decryption key after real keys are configured, so rows written before can still be read and rotated.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with any configured key."""

    def __init__(self) -> None:
        super().__init__(
            "credentials cannot be decrypted: none of CAREDESK_CREDENTIALS_KEYS (or the key derived from "
            "CAREDESK_SECRET_KEY) opens them; was a key changed or removed, or the database copied from another "
            "machine?"
        )


def derived_key() -> bytes:
    digest = hashlib.sha256(("caredesk.connectors.credentials:" + settings.SECRET_KEY).encode()).digest()
    return base64.urlsafe_b64encode(digest)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def configured_keys() -> list[bytes]:
    """The keys in use, newest first; the derived key last."""
    keys = [k.encode() for k in getattr(settings, "CAREDESK_CREDENTIALS_KEYS", [])]
    derived = derived_key()
    return [*keys, derived] if derived not in keys else keys


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in configured_keys()])
    except ValueError as exc:
        raise ValueError(f"CAREDESK_CREDENTIALS_KEYS holds an invalid Fernet key: {exc}") from None


def encrypt_json(value: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsUnreadable() from None
    return result


def rotate(token: str) -> str:
    """The same credentials encrypted with the newest key (raises CredentialsUnreadable if no key opens them)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable() from None
