"""What every route needs: built by the process, completed once by `create_app` (scroll codec,
ClearML token secret), handed to handlers by the dependencies of `query_api.deps`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipeline.core.clock import RowVersions
from pipeline.core.health import Health
from pipeline.core.settings import Settings
from pipeline.core.telemetry import Telemetry
from pipeline.sdk.producer import Producer
from pipeline.storage.clickhouse import AsyncStore
from pipeline.storage.keys import ApiKey
from query_api.auth import Authenticator
from query_api.clearml.scroll import ScrollCodec
from query_api.read_cache import ReadCache

__all__ = ["ApiContext"]


@dataclass
class ApiContext:
    settings: Settings
    store: AsyncStore
    auth: Authenticator
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], float] = time.time
    #: The process's readiness registry (`/readyz`); empty when no monitor runs, and then
    #: `/readyz` probes storage itself.
    health: Health = field(default_factory=Health)
    #: Agent topic → messages not yet committed by this process's worker ({} without one).
    lag: Callable[[], Mapping[str, int]] = dict
    #: Publishes HTTP-ingested events to Kafka (None when the process has no broker).
    producer: Producer | None = None
    #: Signs and checks scroll ids; `create_app` builds it from the API secret when absent.
    scroll: ScrollCodec | None = None
    #: Signs ClearML session tokens (derived from the API secret by `create_app`).
    clearml_token_secret: bytes | None = None
    #: ClearML session key id → (monotonic time looked up, key or None), for `CACHE_S`.
    clearml_keys: dict[str, tuple[float, ApiKey | None]] = field(default_factory=dict)
    #: One ClearML writer at a time per process: edits are read-modify-write of one document.
    clearml_write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: When `/metrics` last refreshed its scrape-time gauges (`query_api.ops.gauges`).
    gauges_refreshed_at: float | None = None
    #: The vast.ai signing key's public half, PEM (read or made on first use).
    vast_pubkey: bytes | None = None
    #: Versions of the rows rewritten in place (ClearML tasks and projects), from `clock`.
    versions: RowVersions = field(init=False)
    #: Shared reads (`query_api.read_cache`): identical reads answered once, answers reused
    #: for at most `settings.read_cache_ms`.
    reads: ReadCache = field(init=False)

    def __post_init__(self) -> None:
        self.versions = RowVersions(self.clock)
        self.reads = ReadCache(self.settings.read_cache_ms / 1000, telemetry=self.telemetry)
