"""What every route needs, built once by `create_app` and kept on `app.state.ctx`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipeline.health import Health
from pipeline.producer import Producer
from pipeline.settings import Settings
from pipeline.storage import AsyncStore
from pipeline.telemetry import Telemetry
from query_api.auth import Authenticator
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
    #: Shared reads (`query_api.read_cache`): identical reads answered once, answers reused
    #: for at most `settings.read_cache_ms`.
    reads: ReadCache = field(init=False)

    def __post_init__(self) -> None:
        self.reads = ReadCache(self.settings.read_cache_ms / 1000, telemetry=self.telemetry)
