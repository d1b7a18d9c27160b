"""The README's "Ten lines" SDK example, executed against the real broker (STYLE 13b)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline import SyncProducer
from pipeline.ingest.topic_admin import ensure_topics

pytestmark = pytest.mark.kafka

README = Path(__file__).resolve().parents[3] / "README.md"


def ten_lines() -> str:
    section = README.read_text().split("## Ten lines", 1)[1]
    match = re.search(r"```python[^\n]*\n(.*?)```", section, re.S)
    assert match is not None, "README: no python block under 'Ten lines'"
    return match.group(1)


async def test_the_ten_lines_deliver_both_events(kafka_bootstrap: str) -> None:
    code = ten_lines()
    assert 'SyncProducer("127.0.0.1:9092")' in code
    await ensure_topics(kafka_bootstrap, ["requests", "heartbeats"])  # what `vitals up` does
    namespace: dict[str, object] = {}
    exec(compile(code.replace("127.0.0.1:9092", kafka_bootstrap), str(README), "exec"),
         namespace)
    p = namespace["p"]
    assert isinstance(p, SyncProducer)
    assert (p.producer.delivered_events, p.producer.undelivered_events) == (2, 0)
