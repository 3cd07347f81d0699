"""Plaintext credentials: made with ``secrets``, stored only as sha256 hex; answers sealed under a credential.

:func:`seal` encrypts (AES-256-GCM) a text under a key derived from a
credential's plaintext and a context: what is stored can be opened only by a
caller presenting that credential again, which the database does not hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from Crypto.Cipher import AES

API_KEY_PREFIX = "rlk_"
RETURN_TOKEN_PREFIX = "rrt_"  # noqa: S105 - a public prefix, not a secret
SECRET_BYTES = 32
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, url-safe base64 without padding
SEALED_PREFIX = "sealed:v1:"
_NONCE_BYTES, _TAG_BYTES = 12, 16


def new_secret(prefix: str) -> str:
    """``prefix`` + 32 random bytes, url-safe base64."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def well_formed(presented: str, prefix: str) -> bool:
    """Whether ``presented`` looks like a credential made by :func:`new_secret` with ``prefix``."""
    return presented.startswith(prefix) and _SHAPE.match(presented[len(prefix) :]) is not None


def hash_secret(plaintext: str) -> str:
    """The sha256 hex digest stored in place of ``plaintext``."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _key(credential: str, context: str) -> bytes:
    return hmac.new(credential.encode("utf-8"), b"ledger sealed answer\0" + context.encode("utf-8"), "sha256").digest()


def seal(plaintext: str, *, credential: str, context: str) -> str:
    """``plaintext`` encrypted and authenticated under ``credential`` and ``context`` (text, safe to store)."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    cipher = AES.new(_key(credential, context), AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES)
    cipher.update(context.encode("utf-8"))
    sealed, tag = cipher.encrypt_and_digest(plaintext.encode("utf-8"))
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + tag + sealed).decode("ascii")


def unseal(stored: str, *, credential: str, context: str) -> str | None:
    """The plaintext :func:`seal` was given, or None if ``stored`` was not sealed under this credential and
    context (or was altered)."""
    if not stored.startswith(SEALED_PREFIX):
        return None
    try:
        raw = base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :].encode("ascii"))
        nonce, tag, sealed = (
            raw[:_NONCE_BYTES],
            raw[_NONCE_BYTES : _NONCE_BYTES + _TAG_BYTES],
            raw[_NONCE_BYTES + _TAG_BYTES :],
        )
        cipher = AES.new(_key(credential, context), AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES)
        cipher.update(context.encode("utf-8"))
        return cipher.decrypt_and_verify(sealed, tag).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        return None
