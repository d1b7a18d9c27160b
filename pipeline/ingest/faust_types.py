"""The part of faust-streaming that Vitals uses, as protocols.

`pipeline/ingest/worker.py` is the one module that imports faust (and mode, beneath it): it
builds the app and its agents. Everything else holds the app as `WorkerApp` and the readiness
monitor reads the consumer's progress as `ConsumerProgress`, so the rest of the code is checked
against these few members instead of faust's App (2,000+ lines of surface).

faust's own annotations are wrong in one place Vitals relies on: `Stream.noack_take` is
declared to yield values, but it yields the buffered *events* (their message and `ack`). The
agent therefore reads its stream as `AgentStream` (→ `ManualAckStream`), cast once where faust
hands it over.

`tests/unit/test_layout_rules.py` holds the imports of faust and mode to `worker.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence, Set
from typing import Protocol

__all__ = ["AgentStream", "ConsumerProgress", "KafkaMessage", "ManualAckStream", "PartitionId",
           "StreamEvent", "WorkerApp"]


class WorkerApp(Protocol):
    """A worker app as the process runtime drives it: finalize, start (joins the group), stop."""

    def finalize(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class KafkaMessage(Protocol):
    """One consumed Kafka message: where it came from and its raw bytes."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class StreamEvent(Protocol):
    """An event of a stream: its message; acked through the stream (`ManualAckStream.ack`)."""

    @property
    def message(self) -> KafkaMessage: ...


class ManualAckStream(Protocol):
    """A stream with faust's automatic acks off (`stream.noack()`): batches of events, each
    acked by the agent once its rows are stored."""

    def noack_take(self, max_: int, within: float) -> AsyncIterator[Sequence[StreamEvent]]: ...

    async def ack(self, event: StreamEvent) -> bool: ...


class AgentStream(Protocol):
    """The stream an agent is given (a `faust.Stream`; faust's `StreamT` declares no `noack`)."""

    def noack(self) -> ManualAckStream: ...


class PartitionId(Protocol):
    """A topic partition (faust's `TP`); Vitals reads only its topic."""

    @property
    def topic(self) -> str: ...


class ConsumerProgress(Protocol):
    """What readiness reads of the in-process consumer: the assigned partitions, their high
    watermarks and the offsets committed so far (faust's consumer, `app._consumer`)."""

    @property
    def _committed_offset(self) -> Mapping[PartitionId, int | None]: ...

    def assignment(self) -> Set[PartitionId]: ...

    def highwater(self, tp: PartitionId) -> int | None: ...
