"""Reaching a running `vitals up` over HTTP: its admin routes, for the commands that need the
embedded store it holds (`keys`, `sql`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pipeline.cli.errors import CliError
from pipeline.cli.local_state import _state_files, read_text_file
from pipeline.core.settings import Settings


def curl_line(api_url: str, key_file: Path) -> str:
    auth = f"Authorization: Bearer $(cat {shlex.quote(str(key_file))})"
    return (
        f'curl -s -X POST {api_url}/get_endpoint_stats/ -H "{auth}" '
        f"-H 'Content-Type: application/json' -d '{{\"id\": 1}}'"
    )


class _Remote:
    """The admin routes of the `vitals up` running on this data dir, as its superadmin."""

    def __init__(self, settings: Settings) -> None:
        url_file, key_file = _state_files(settings)
        url, key = read_text_file(url_file), read_text_file(key_file)
        if url is None or key is None:
            missing = url_file if url is None else key_file
            raise CliError(
                f"`vitals up` is not running on {settings.data_dir} ({missing} is "
                f"missing); the embedded store is only reachable through it"
            )
        self.url, self.key, self.url_file = url, key, url_file

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            r = httpx.request(
                method,
                self.url + path,
                json=body,
                timeout=120,
                headers={"Authorization": f"Bearer {self.key}"},
            )
        except httpx.HTTPError as exc:
            raise CliError(
                f"no answer from `vitals up` at {self.url} ({exc}); is it running? "
                f"({self.url_file} may be stale)"
            ) from None
        if r.status_code >= 400:
            try:
                doc = r.json()
                message = f"{doc['message']} ({doc['error']}, HTTP {r.status_code})"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {r.status_code}: {r.text[:500]}"
            raise CliError(message)
        return r


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
