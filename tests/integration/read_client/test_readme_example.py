"""The README's "Reading from Python" example runs as written against a live Vitals (its URL and
key file pointed at the test's stack), and prints the numbers of the data published here."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from pathlib import Path

from pipeline.sdk.producer import Producer
from tests.integration.clearml.task_events_helpers import add_batch, scalar, wait_count

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_example() -> str:
    text = README.read_text("utf-8")
    section = text[text.index("## Reading from Python"):]
    return re.search(r"```python[^\n]*\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


async def test_the_readme_read_example_runs(stack_factory, tmp_path):
    stack = await stack_factory()
    s = stack.settings
    now = time.time()
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        await p.send_many("requests", [
            {"v": 1, "type": "request", "ts": now - 5 * i, "endpoint_id": 1, "status": 200,
             "latency_ms": 100.0 + i} for i in range(6)])
    await stack.wait_requests(6)
    key = await stack.key("default", "admin")
    await add_batch(stack, key, [scalar("demo-train", i, 0.25 * i) for i in range(3)])
    await wait_count(stack, "task_metric_events", 3)
    (tmp_path / ".data").mkdir()
    (tmp_path / ".data" / "admin.key").write_text(key + "\n")
    code = readme_example().replace("http://127.0.0.1:8000", stack.rt.api_url or "")

    def run() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.chdir(tmp_path):
            exec(compile(code, "README.md", "exec"), {})
        return out.getvalue()

    lines = (await asyncio.to_thread(run)).splitlines()
    assert lines[0] == "6 0 1.0"
    assert lines[1].split()[0] == "6"
    assert lines[2:] == ["training_stats_scalar 0 0", "training_stats_scalar 1 0.25",
                         "training_stats_scalar 2 0.5"]
