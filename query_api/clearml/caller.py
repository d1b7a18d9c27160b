"""Who is making a ClearML call: the ClearML credentials of every `<service>.<action>` route
(`query_api.deps.clearml_call` is its dependency).

Accepted, in this order:
- `Authorization: Bearer <session token>` — a token from `auth.login` (`tokens`); its key is
  looked up by id (cached for `CACHE_S`), so a revoked key's tokens stop within that time;
- `Authorization: Basic <access_key:secret_key>` — ClearML credentials: the access key is a
  Vitals key's id, the secret key the key itself (`vk_<id>_…`);
- anything Vitals accepts elsewhere (`Bearer vk_…`, `api_key` in the body; `query_api.auth`).
"""

from __future__ import annotations

import base64
import binascii
import time

from fastapi import Request

from pipeline.storage import keys
from pipeline.storage.keys import ApiKey
from query_api.clearml import tokens
from query_api.clearml.envelope import INVALID_TOKEN, NO_CREDENTIALS, CallError
from query_api.clearml.store import key_by_id
from query_api.context import ApiContext
from query_api.errors import ApiError

__all__ = ["CACHE_S", "session_key", "token_secret"]

CACHE_S = 5.0


def token_secret(ctx: ApiContext) -> bytes:
    """The secret ClearML session tokens are signed with (`create_app` derives it)."""
    if ctx.clearml_token_secret is None:
        raise RuntimeError("the API context has no token secret: build the app with create_app")
    return ctx.clearml_token_secret


async def _key_by_id(ctx: ApiContext, key_id: str) -> ApiKey | None:
    cache = ctx.clearml_keys
    now = time.monotonic()
    hit = cache.get(key_id)
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    found = await key_by_id(ctx.store, key_id)
    if len(cache) > 10_000:
        cache.clear()
    cache[key_id] = (now, found)
    return found


async def _credentials(ctx: ApiContext, value: str) -> ApiKey:
    try:
        access_key, sep, secret_key = base64.b64decode(value, validate=True).decode() \
            .partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise ApiError(401, "UNAUTHORIZED",
                       "malformed Basic credentials: send access_key:secret_key")
    if keys.parse_key(secret_key) != access_key:
        raise ApiError(401, "UNAUTHORIZED",
                       "invalid credentials: the access key is a Vitals key's id and the "
                       "secret key the key itself (vk_<id>_...)")
    found = await ctx.auth.lookup(secret_key)
    if found is None:
        raise ApiError(401, "UNAUTHORIZED", "invalid or revoked API key")
    return found


async def session_key(ctx: ApiContext, request: Request, body_key: object = None
                      ) -> ApiKey | None:
    """The key of a session token or of ClearML credentials; None when the call carries
    neither but something `query_api.auth` accepts (Bearer key, Coopr headers, body `api_key`),
    for `query_api.deps` to authenticate; 401 (ClearML's subcode) without any credentials."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "bearer" and tokens.looks_like_token(value):
        try:
            claims = tokens.decode(token_secret(ctx), value, now=ctx.clock())
        except tokens.TokenInvalid as exc:
            raise CallError(401, "UNAUTHORIZED", f"invalid token: {exc}", INVALID_TOKEN) \
                from None
        key = await _key_by_id(ctx, claims.key_id)
        if key is None or key.tenant != claims.tenant:
            raise CallError(401, "UNAUTHORIZED",
                            "invalid token: the API key it was issued for is revoked",
                            INVALID_TOKEN)
        return key
    if scheme == "basic":
        return await _credentials(ctx, value)
    if not header and body_key is None and "coopr-apikey" not in request.headers:
        raise CallError(401, "UNAUTHORIZED",
                        "missing credentials: send 'Authorization: Bearer <token or key>' or "
                        "Basic access_key:secret_key", NO_CREDENTIALS)
    return None
