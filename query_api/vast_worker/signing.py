"""The RSA public key `GET /vast/…/pubkey/` serves to vast.ai workers.

A pyworker fetches `<REPORT_ADDR>/pubkey/` when it starts and stays in error without it; it
then accepts only requests whose `auth_data.signature` verifies against that key (PKCS#1 v1.5,
SHA-256, over `json.dumps({"url": auth_data.url}, indent=4, sort_keys=True)`).

Which key: `<VITALS_DATA_DIR>/vast-router.pub.pem` when that file exists (the public key of
the router that signs your requests: put it there); otherwise Vitals' own key pair,
`<VITALS_DATA_DIR>/vast-router.key.pem` (created once, mode 0600), whose private half signs the
requests you route to such workers (`sign`). API replicas that do not share a data dir need
the same file in each.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["PRIVATE_FILE", "PUBLIC_FILE", "public_pem", "sign"]

PUBLIC_FILE = "vast-router.pub.pem"
PRIVATE_FILE = "vast-router.key.pem"


def _private_key(data_dir: Path) -> rsa.RSAPrivateKey:
    """The key pair in `data_dir`, created on first use (atomically: concurrent processes
    end up with the same file)."""
    path = data_dir / PRIVATE_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = data_dir / f".{PRIVATE_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


def public_pem(data_dir: Path) -> bytes:
    """The PEM public key workers should trust (see the module)."""
    operator = data_dir / PUBLIC_FILE
    if operator.exists():
        return operator.read_bytes()
    return _private_key(data_dir).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(data_dir: Path, url: str) -> str:
    """The `auth_data.signature` a pyworker trusting `public_pem(data_dir)` accepts for a
    request routed with `auth_data.url` = `url` (Vitals' own key pair only)."""
    message = json.dumps({"url": url}, indent=4, sort_keys=True).encode()
    signature = _private_key(data_dir).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()
