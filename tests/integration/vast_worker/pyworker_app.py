"""A pyworker as a vast.ai template builds one: the `vastai` package's `Worker`, unchanged, with
one route. Run by test_vast_worker.py as a process with the environment vast.ai gives a
worker (CONTAINER_ID, REPORT_ADDR, MASTER_TOKEN, WORKER_PORT, VAST_TCP_PORT_<port>,
PUBLIC_IPADDR) and a `.has_benchmark` file in its working directory (pyworker's own cache of
its benchmark result: the worker reports it as max_perf).

The model is a remote function (pyworker's remote dispatch): no model server is needed. A
payload `{"units": n}` is a request of n work units (the workload calculator); `{"fail": true}`
makes the model raise, which pyworker reports as an errored request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from vastai.serverless.server.worker import (
    BenchmarkConfig,
    HandlerConfig,
    Worker,
    WorkerConfig,
)


async def model(**params: Any) -> dict[str, Any]:
    if params.get("fail"):
        raise RuntimeError("the model failed")
    return {"echo": params}


@contextlib.asynccontextmanager
async def loaded() -> AsyncIterator[None]:
    yield  # the model is ready at once


def main() -> None:
    handler = HandlerConfig(
        route="/generate", allow_parallel_requests=True, max_queue_time=None,
        benchmark_config=BenchmarkConfig(dataset=[{"units": 1}], runs=1),
        remote_function=model,
        workload_calculator=lambda payload: float(payload.get("units", 1)))
    Worker(WorkerConfig(handlers=[handler], lifecycle=loaded())).run()


if __name__ == "__main__":
    main()
