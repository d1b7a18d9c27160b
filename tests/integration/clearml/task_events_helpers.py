"""Shared helpers of the task-events integration tests."""

from __future__ import annotations

import time
from typing import Any

import orjson

# A recent, whole second in ms: inside retention, and clear of the future limit.
BASE_MS = (int(time.time()) - 3600) * 1000


async def call(stack: Any, key: str, action: str, body: dict[str, Any] | None = None,
               version: str | None = None) -> tuple[int, dict[str, Any]]:
    path = f"/v{version}/events.{action}" if version else f"/events.{action}"
    r = await stack.http.post(path, json=body or {}, headers={"Authorization": f"Bearer {key}"})
    return r.status_code, r.json()


async def data(stack: Any, key: str, action: str, body: dict[str, Any] | None = None,
               version: str | None = None) -> dict[str, Any]:
    status, doc = await call(stack, key, action, body, version)
    assert status == 200, doc
    assert doc["meta"]["result_code"] == 200
    return doc["data"]


async def add_batch(stack: Any, key: str, events: list[Any]) -> tuple[int, dict[str, Any]]:
    body = b"\n".join(e if isinstance(e, bytes) else orjson.dumps(e) for e in events)
    r = await stack.http.post("/events.add_batch", content=body,
                              headers={"Authorization": f"Bearer {key}",
                                       "Content-Type": "application/json-lines"})
    return r.status_code, r.json()


async def count(stack: Any, table: str, where: str = "1") -> int:
    rows = await stack.rows(f"SELECT count() FROM {{db}}.{table} FINAL WHERE {where}")
    return int(rows[0][0])


async def wait_count(stack: Any, table: str, n: int, where: str = "1") -> None:
    async def probe() -> int:
        return await count(stack, table, where)
    await stack.wait_for(probe, n)


def scalar(task: str, i: int, value: float, *, metric: str = "loss", variant: str = "total",
           ts: int | None = None) -> dict[str, Any]:
    return {"type": "training_stats_scalar", "task": task, "iter": i, "metric": metric,
            "variant": variant, "value": value,
            "timestamp": BASE_MS + i * 1000 if ts is None else ts}


def log(task: str, i: int, msg: str, *, level: str = "info", ts: int | None = None
        ) -> dict[str, Any]:
    return {"type": "log", "task": task, "level": level, "worker": "w1", "msg": msg,
            "timestamp": BASE_MS + i * 1000 if ts is None else ts}
