"""Tenant provider keys at rest: Fernet (AES-128-CBC + HMAC) with a key derived from SECRET_KEY
by HKDF, so the raw SECRET_KEY is never used as a cipher key and other uses can derive their own."""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["KeyVault", "InvalidToken", "mask"]


class KeyVault:
    def __init__(self, secret_key: str):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"avatarchat-ai",
                       info=b"provider-keys/v1").derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode())

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(bytes(token)).decode()


def mask(key: str) -> str:
    """A hint to recognise a key by, never enough to use it: ``sk-...abcd``."""
    prefix = key.split("-", 1)[0] + "-" if "-" in key[:8] else ""
    return f"{prefix}...{key[-4:]}" if len(key) >= 12 else "..."
