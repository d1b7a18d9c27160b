"""Stateless, signed scroll ids: keyset cursors that any API replica can continue. Pure.

A scroll id is `base64url(JSON state) "." base64url(HMAC-SHA256(secret, JSON state)[:16])`.
The state names the action it continues (`a`), the tenant and the task(s) it belongs to, the
query's fixed parameters, and the last position returned (e.g. `(timestamp, event_id)`). Reading
after a position with `>` on a total order returns every row exactly once, even while rows are
inserted between pages.

`ScrollIdInvalid.reason` tells the caller what is wrong: `malformed` (not a scroll id),
`tampered` (signature mismatch: edited, or signed with another secret) or `foreign` (a valid id
issued for another action, tenant, task or query).

The secret is `Settings.secret` (VITALS_SECRET); when unset, `load_secret` generates one into
`<data dir>/scroll-secret` on first use and reads it afterwards, so every process sharing the data
dir shares it. If the data dir cannot be written, a per-process random secret is used (scroll ids
then do not survive a restart). Replicas of the API on separate hosts need VITALS_SECRET.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.errors import VitalsError

__all__ = ["ScrollCodec", "ScrollIdInvalid", "load_secret"]

_SECRET_FILE = "scroll-secret"


class ScrollIdInvalid(VitalsError, ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / _SECRET_FILE
    try:
        if path.exists():
            text = path.read_text("ascii").strip()
            if text:
                return text.encode()
        data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token.encode()
    except FileExistsError:  # another process created it meanwhile
        return path.read_text("ascii").strip().encode()
    except OSError:
        return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ScrollCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]

    def encode(self, state: Mapping[str, Any]) -> str:
        payload = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, scroll_id: str, expect: Mapping[str, Any]) -> dict[str, Any]:
        """The state of `scroll_id`, checked to carry every item of `expect` (action, tenant,
        task, fixed query parameters). Raises ScrollIdInvalid."""
        if not isinstance(scroll_id, str) or scroll_id.count(".") != 1 or len(scroll_id) > 8192:
            raise ScrollIdInvalid("malformed", "scroll_id is not a scroll id issued by this API")
        body, mac = scroll_id.split(".")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise ScrollIdInvalid("malformed",
                                  "scroll_id is not a scroll id issued by this API") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise ScrollIdInvalid("tampered", "scroll_id signature does not match: it was "
                                  "altered or issued by another deployment")
        state = orjson.loads(payload)
        if not isinstance(state, dict):
            raise ScrollIdInvalid("malformed", "scroll_id is not a scroll id issued by this API")
        for k, v in expect.items():
            if state.get(k) != v:
                raise ScrollIdInvalid("foreign", f"scroll_id belongs to another query "
                                      f"({k} differs); start again without scroll_id")
        return state
