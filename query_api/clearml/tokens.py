"""ClearML session tokens: the JWT that `auth.login` hands out and every later call carries as
`Authorization: Bearer <token>`. Pure.

The ClearML SDK reads the token's claims without checking the signature (`api_version`,
`feature_set`, `exp`), so the token is a standard HS256 JWT. Vitals checks the signature with a
secret derived from the API secret (`VITALS_SECRET` or the data dir's, see
`query_api.clearml.scroll`),
so any replica sharing that secret accepts it, and the expiry. The claims name the Vitals key
the token was issued for (`identity.user` = key id, `identity.company` = tenant); whoever
verifies a token still looks the key up, so revoking the key ends its tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.core.errors import VitalsError

__all__ = ["API_VERSION", "DEFAULT_EXPIRATION_S", "MAX_EXPIRATION_S", "TokenClaims",
           "TokenInvalid", "decode", "derive_secret", "encode", "looks_like_token"]

#: The ClearML API version Vitals answers as (the SDK picks its request schemas from it).
API_VERSION = "2.23"
DEFAULT_EXPIRATION_S = 30 * 24 * 3600
MAX_EXPIRATION_S = 365 * 24 * 3600
_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenInvalid(VitalsError, ValueError):
    """A bearer token that is malformed, signed with another secret, or expired."""


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    tenant: str
    role: str
    exp: int


def derive_secret(api_secret: bytes) -> bytes:
    return hmac.new(api_secret, b"vitals clearml session token", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def looks_like_token(text: str) -> bool:
    """A JWT has three dot-separated parts; a Vitals key (`vk_…`) has no dot."""
    return text.count(".") == 2


def encode(secret: bytes, *, key_id: str, tenant: str, role: str, now: float,
           expiration_s: int) -> str:
    iat = int(now)
    claims: dict[str, Any] = {
        "identity": {"company": tenant, "company_name": tenant, "user": key_id,
                     "user_name": key_id, "role": role},
        "env": "vitals", "api_version": API_VERSION, "feature_set": "basic",
        "iat": iat, "exp": iat + expiration_s,
    }
    signing = f"{_b64(orjson.dumps(_HEADER))}.{_b64(orjson.dumps(claims))}"
    sig = hmac.new(secret, signing.encode("ascii"), hashlib.sha256).digest()
    return f"{signing}.{_b64(sig)}"


def decode(secret: bytes, token: str, *, now: float) -> TokenClaims:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed token")
    try:
        sig = _unb64(parts[2])
        want = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"),
                        hashlib.sha256).digest()
        if not hmac.compare_digest(sig, want):
            raise TokenInvalid("token signature mismatch (issued by another server?)")
        claims = orjson.loads(_unb64(parts[1]))
        identity = claims["identity"]
        out = TokenClaims(str(identity["user"]), str(identity["company"]),
                          str(identity["role"]), int(claims["exp"]))
    except TokenInvalid:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        raise TokenInvalid("malformed token") from exc
    if out.exp <= now:
        raise TokenInvalid("token expired: call auth.login again")
    return out
