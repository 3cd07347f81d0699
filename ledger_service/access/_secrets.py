"""Plaintext credentials: made with ``secrets``, stored only as sha256 hex."""

from __future__ import annotations

import hashlib
import re
import secrets

API_KEY_PREFIX = "rlk_"
RETURN_TOKEN_PREFIX = "rrt_"  # noqa: S105 - a public prefix, not a secret
SECRET_BYTES = 32
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, url-safe base64 without padding


def new_secret(prefix: str) -> str:
    """``prefix`` + 32 random bytes, url-safe base64."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def well_formed(presented: str, prefix: str) -> bool:
    """Whether ``presented`` looks like a credential made by :func:`new_secret` with ``prefix``."""
    return presented.startswith(prefix) and _SHAPE.match(presented[len(prefix) :]) is not None


def hash_secret(plaintext: str) -> str:
    """The sha256 hex digest stored in place of ``plaintext``."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()
