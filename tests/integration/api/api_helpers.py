"""Shared setup of the API tests."""

from __future__ import annotations

import time

from pipeline.sdk.producer import Producer


async def one_endpoint(stack) -> str:
    """Store one request of tenant acme's endpoint 1 ("mine"); return an admin key of acme."""
    async with Producer(stack.settings.kafka_bootstrap, stack.settings.topics) as p:
        await p.send("requests", {"v": 1, "type": "request", "ts": time.time(), "tenant": "acme",
                                  "endpoint_id": 1, "endpoint": "mine", "status": 200})
    await stack.wait_for(lambda: stack.rows("SELECT count() FROM {db}.endpoints FINAL"), [(1,)])
    return await stack.key("acme", "admin")
