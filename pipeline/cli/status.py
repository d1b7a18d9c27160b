"""`vitals status`: what the `vitals up` of this data dir is doing, read from what it exposes.

Sources, all read-only: `<data dir>/api.url` (written by `vitals up` while it serves), its
`/healthz` and `/readyz` (checks with each agent's consumer lag), `<data dir>/admin.key`, and the
broker: `KAFKA_BOOTSTRAP`, else the local broker of the data dir (`LocalKafka.status`).

Exit codes: 0 ready; 1 nothing serves on this data dir (one line on stderr says why and what to
run); 3 it serves but is not ready (the checks say which part is not).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.core.settings import Settings

__all__ = ["NOT_READY", "NOT_RUNNING", "Broker", "format_status", "run"]

NOT_RUNNING = 1
NOT_READY = 3


@dataclass(frozen=True)
class Broker:
    """Where the broker is and who runs it (`note`), or why it is not known (`bootstrap` None)."""

    bootstrap: str | None
    note: str


def format_status(*, data_dir: Path, api_url: str, key_file: Path, key_present: bool,
                  broker: Broker, readyz: dict[str, Any]) -> str:
    """The text `vitals status` prints for a serving `vitals up` whose `/readyz` body is `readyz`.

    One line per fact (API, dashboard, key file, Kafka, readiness), then a table of the agents:
    topic, state and consumer lag (messages behind the log end; `-` while the
    consumer does not know it yet). Checks that are not ready carry their reason.
    """
    checks: dict[str, dict[str, Any]] = readyz.get("checks", {})
    ready = readyz.get("status") == "ready"
    key_note = "" if key_present else "  (missing: `vitals up` writes it at start)"
    lines = [
        f"Vitals on {data_dir}: {'ready' if ready else 'NOT READY'}",
        f"  API:       {api_url}  (OpenAPI: {api_url}/docs)",
        f"  dashboard: {api_url}/ui",
        f"  admin key: {key_file}{key_note}",
        f"  Kafka:     {broker.bootstrap or 'unknown'}  ({broker.note})",
    ]
    for name in ("storage", "broker"):
        check = checks.get(name)
        if check is not None:
            reason = f" ({check['reason']})" if check.get("reason") else ""
            lines.append(f"  {name + ':':<10} {check['state']}{reason}")
    agents = sorted((n.removeprefix("agent:"), c) for n, c in checks.items()
                    if n.startswith("agent:"))
    if agents:
        rows = [("topic", "state", "lag")] + [
            (topic, c["state"] + (f" ({c['reason']})" if c.get("reason") else ""),
             "-" if c.get("lag") is None else str(c["lag"])) for topic, c in agents]
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        lines.append("  consumers:")
        lines += [f"    {t:<{w0}}  {s:<{w1}}  {lag:>3}".rstrip() for t, s, lag in rows]
    return "\n".join(lines)


def _broker(settings: Settings) -> Broker:
    if settings.kafka_bootstrap:
        return Broker(settings.kafka_bootstrap, "KAFKA_BOOTSTRAP")
    from pipeline.local.kafka import LocalKafka

    kafka = LocalKafka(settings.data_dir / "kafka", cache_dir=Path.home() / ".cache" / "vitals")
    info = kafka.status()
    if info is None:
        return Broker(None, f"no local broker answers in {kafka.home}; "
                            "set KAFKA_BOOTSTRAP if `vitals up` uses another broker")
    return Broker(info.bootstrap, f"local broker, pid {info.pid}; log {info.log_file}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def run(settings: Settings, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Print the status of the `vitals up` on `settings.data_dir`; the exit code (see module)."""
    import httpx

    data_dir = settings.data_dir.absolute()
    url_file, key_file = data_dir / "api.url", data_dir / "admin.key"
    url = _read(url_file)
    if url is None:
        print(f"vitals: no `vitals up` runs on {data_dir} ({url_file} is missing); start one "
              f"with `vitals up` (or set VITALS_DATA_DIR to its data dir)", file=err)
        return NOT_RUNNING
    try:
        with httpx.Client(base_url=url, timeout=5.0) as http:
            http.get("/healthz").raise_for_status()
            answer = http.get("/readyz")
            readyz = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"vitals: no `vitals up` answers at {url} ({type(exc).__name__}: {exc}); "
              f"{url_file} is left over from a run that did not stop cleanly: start it again "
              f"with `vitals up`", file=err)
        return NOT_RUNNING
    text = format_status(data_dir=data_dir, api_url=url, key_file=key_file,
                         key_present=key_file.is_file(), broker=_broker(settings),
                         readyz=readyz)
    print(text, file=out, flush=True)
    return 0 if answer.status_code == 200 and readyz.get("status") == "ready" else NOT_READY
