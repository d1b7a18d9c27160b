"""The read client of the query API: `Client` (blocking) and `AsyncClient` (asyncio).

    from pipeline import Client
    client = Client("http://127.0.0.1:8000", api_key="vk_…")
    m = client.endpoints.get_metrics(endpoint_id=7, timeframe="24h", metrics=["performance"])
    m.summary.total_executions, m.performance.latency.time_series.to_pandas()

Contract:
- One construction per client; one keep-alive HTTP connection pool (httpx) per client, closed by
  `close()` / the context manager. Each method is one request, or, for the iterators that follow
  scroll ids (`tasks.events`, `tasks.log`), one request per page; attribute access never calls
  the API. Documents come back as `Doc` (`pipeline.sdk.documents`): snake_case attributes, the
  API's fields; a field the API does not serve reads as None.
- Errors: an error answer raises the `ApiError` subclass of its status with the API's code,
  parameter and allowed values (`pipeline.sdk.errors`); 429 and 503 carry `retry_after`. With
  `retries=N` (default 0) a 429 or 503 is retried up to N times after the `Retry-After` it names
  (capped at `max_retry_wait`). No answer within `timeout` raises `ClientTimeout`; a refused or
  reset connection `ConnectionFailed`.
- The method set, its parameters and defaults are the same in both classes; `AsyncClient`'s
  methods are coroutines and its iterators async iterators.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipeline.sdk.documents import Doc, wrap
from pipeline.sdk.errors import ApiError, ClientTimeout, ConnectionFailed, api_error

__all__ = ["AsyncClient", "Client"]


@dataclass(frozen=True)
class Call:
    """One API request, independent of how it is sent."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    #: The `data` of a ClearML `{meta, data}` envelope is the answer.
    clearml: bool = False
    #: The answer is text (CSV, Prometheus), not JSON.
    text: bool = False


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        out[k] = ",".join(map(str, v)) if isinstance(v, list | tuple) else v
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _answer(call: Call, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        raise api_error(response.status_code, body, _retry_after(response))
    if call.text:
        return response.text
    doc = response.json()
    if call.clearml and isinstance(doc, dict) and "data" in doc:
        doc = doc["data"]
    return wrap(doc)


class _Calls:
    """The requests of every family; `Client` and `AsyncClient` send them."""

    # endpoint metrics (TensorOne style)
    @staticmethod
    def metrics(endpoint_id: int | str, timeframe: str | None, granularity: str | None,
                metrics: Sequence[str] | None, aggregation: str | None,
                format: str | None) -> Call:
        return Call("GET", f"/v2/endpoints/{endpoint_id}/metrics", _clean({
            "timeframe": timeframe, "granularity": granularity, "metrics": metrics,
            "aggregation": aggregation, "format": format}), text=format in ("csv", "prometheus"))

    @staticmethod
    def batch(endpoint_ids: Sequence[int | str], timeframe: str | None,
              metrics: Sequence[str] | None, aggregation: str | None) -> Call:
        body = {k: v for k, v in {"endpointIds": list(endpoint_ids), "timeframe": timeframe,
                                  "metrics": metrics, "aggregation": aggregation}.items()
                if v is not None}
        return Call("POST", "/v2/endpoints/metrics/batch", body=body)

    # Vast stats
    @staticmethod
    def stats(route: str, ident: int | str, metric_name: str | None, t1: float | None,
              t2: float | None, step: int | None) -> Call:
        body: dict[str, Any] = ({"endpoint": ident} if isinstance(ident, str) else {"id": ident})
        body.update({k: v for k, v in {"metric_name": metric_name, "t1": t1, "t2": t2,
                                       "step": step}.items() if v is not None})
        return Call("POST", f"/{route}/", body=body)

    # ClearML task events
    @staticmethod
    def event(action: str, body: dict[str, Any]) -> Call:
        return Call("POST", f"/events.{action}",
                    body={k: v for k, v in body.items() if v is not None}, clearml=True)


class _Namespace:
    def __init__(self, send: Any) -> None:
        self._send = send


class _Endpoints(_Namespace):
    def get_metrics(self, endpoint_id: int | str, timeframe: str | None = None,
                    granularity: str | None = None, metrics: Sequence[str] | None = None,
                    aggregation: str | None = None, format: str | None = None) -> Any:
        """`GET /v2/endpoints/{id}/metrics`: a `Doc` (text for format csv/prometheus)."""
        return self._send(_Calls.metrics(endpoint_id, timeframe, granularity, metrics,
                                         aggregation, format))

    def batch_metrics(self, endpoint_ids: Sequence[int | str], timeframe: str | None = None,
                      metrics: Sequence[str] | None = None,
                      aggregation: str | None = None) -> Any:
        """`POST /v2/endpoints/metrics/batch`."""
        return self._send(_Calls.batch(endpoint_ids, timeframe, metrics, aggregation))

    def stats(self, endpoint: int | str, metric_name: str | None = None,
              t1: float | None = None, t2: float | None = None, step: int | None = None) -> Any:
        """`POST /get_endpoint_stats/` by id or name: current stats, or with `metric_name`,
        `t1`, `t2` (and `step`) one metric's timeseries."""
        return self._send(_Calls.stats("get_endpoint_stats", endpoint, metric_name, t1, t2,
                                       step))

    def pricing(self, endpoint_id: int | str) -> Any:
        return self._send(Call("GET", f"/v2/endpoints/{endpoint_id}/pricing"))


class _Autogroups(_Namespace):
    def stats(self, autogroup_id: int, metric_name: str | None = None, t1: float | None = None,
              t2: float | None = None, step: int | None = None) -> Any:
        """`POST /get_autogroup_stats/`."""
        return self._send(_Calls.stats("get_autogroup_stats", autogroup_id, metric_name, t1, t2,
                                       step))


class _Tasks(_Namespace):
    def events_page(self, task: str, *, batch_size: int | None = None,
                    event_type: str | None = None, order: str | None = None,
                    scroll_id: str | None = None) -> Any:
        """One page of `events.get_task_events`: `events`, `returned`, `total`, `scroll_id`."""
        return self._send(_Calls.event("get_task_events", {
            "task": task, "batch_size": batch_size, "event_type": event_type, "order": order,
            "scroll_id": scroll_id}))

    def log_page(self, task: str, *, batch_size: int | None = None,
                 navigate_earlier: bool | None = None, scroll_id: str | None = None) -> Any:
        """One page of `events.get_task_log`."""
        return self._send(_Calls.event("get_task_log", {
            "task": task, "batch_size": batch_size, "navigate_earlier": navigate_earlier,
            "scroll_id": scroll_id}))

    def scalar_histograms(self, task: str, samples: int | None = None,
                          key: str | None = None) -> Any:
        """`events.scalar_metrics_iter_histogram`: {metric: {variant: {x, y, name}}}."""
        return self._send(_Calls.event("scalar_metrics_iter_histogram",
                                       {"task": task, "samples": samples, "key": key}))

    def call(self, action: str, **body: Any) -> Any:
        """Any other `events.<action>` with its body, e.g. `debug_images`, `get_plot_sample`."""
        return self._send(_Calls.event(action, body))


class _Jobs(_Namespace):
    def queues(self, tenant: str | None = None) -> Any:
        """`GET /v2/metrics/queues`."""
        return self._send(Call("GET", "/v2/metrics/queues", _clean({"tenant": tenant})))

    def node_usage(self, start: int | None = None, end: int | None = None,
                   tenant: str | None = None, user: str | None = None) -> Any:
        """`GET /v2/metrics/nodes/usage` (node-seconds)."""
        return self._send(Call("GET", "/v2/metrics/nodes/usage", _clean(
            {"start": start, "end": end, "tenant": tenant, "user": user})))


class _CustomMetrics(_Namespace):
    def timeseries(self, name: str, *, t1: float | None = None, t2: float | None = None,
                   step: int | None = None, aggregation: str | None = None,
                   group_by: str | None = None, kind: str | None = None,
                   tags: dict[str, str] | None = None, tenant: str | None = None) -> Any:
        """`GET /v2/metrics/custom/timeseries`; `tags` filter as `tag=k:v`."""
        params = _clean({"name": name, "t1": t1, "t2": t2, "step": step,
                         "aggregation": aggregation, "group_by": group_by, "kind": kind,
                         "tenant": tenant})
        if tags:
            params["tag"] = [f"{k}:{v}" for k, v in tags.items()]
        return self._send(Call("GET", "/v2/metrics/custom/timeseries", params))

    def series(self, name: str | None = None, tenant: str | None = None) -> Any:
        """`GET /v2/metrics/custom/series`."""
        return self._send(Call("GET", "/v2/metrics/custom/series",
                               _clean({"name": name, "tenant": tenant})))


class _Keys(_Namespace):
    def create(self, tenant: str | None = None, role: str = "reader", name: str = "") -> Any:
        """`POST /admin/keys` (admin): the new key is in `.key`, shown once."""
        body = {"tenant": tenant, "role": role, "name": name}
        return self._send(Call("POST", "/admin/keys",
                               body={k: v for k, v in body.items() if v is not None}))

    def list(self, tenant: str | None = None) -> Any:
        return self._send(Call("GET", "/admin/keys", _clean({"tenant": tenant})))

    def revoke(self, key_id: str) -> Any:
        return self._send(Call("DELETE", f"/admin/keys/{key_id}"))


class _Base:
    def __init__(self, url: str, api_key: str | None, *, retries: int,
                 max_retry_wait: float) -> None:
        if retries < 0:
            raise ValueError("retries must be ≥ 0")
        self.url = url.rstrip("/")
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.endpoints = _Endpoints(self._send)
        self.autogroups = _Autogroups(self._send)
        self.tasks = _Tasks(self._send)
        self.jobs = _Jobs(self._send)
        self.custom_metrics = _CustomMetrics(self._send)
        self.keys = _Keys(self._send)

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    def _wait(self, call: Call, attempt: int, exc: Exception) -> float:
        """Seconds to wait before retrying `call` after `exc`; raises what the caller gets
        instead (a transport failure as the SDK's error, an error not to retry as it is)."""
        if isinstance(exc, httpx.TimeoutException):
            raise ClientTimeout(f"{call.method} {call.path}: no answer in time") from exc
        if isinstance(exc, httpx.TransportError):
            raise ConnectionFailed(f"{call.method} {self.url}{call.path}: {exc}") from exc
        retry_after = exc.retry_after if isinstance(exc, ApiError) else None
        if attempt >= self.retries or retry_after is None:
            raise exc
        return min(retry_after, self.max_retry_wait)

    def _events_pages(self, task: str, batch_size: int, event_type: str | None,
                      order: str | None) -> Callable[[str | None], Any]:
        return lambda scroll: self.tasks.events_page(
            task, batch_size=batch_size, event_type=event_type, order=order, scroll_id=scroll)

    def _log_pages(self, task: str, batch_size: int,
                   navigate_earlier: bool) -> Callable[[str | None], Any]:
        return lambda scroll: self.tasks.log_page(
            task, batch_size=batch_size, navigate_earlier=navigate_earlier, scroll_id=scroll)


class Client(_Base):
    """Blocking read client; see the module docstring for the contract."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = 30.0, retries: int = 0, max_retry_wait: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, api_key, retries=retries, max_retry_wait=max_retry_wait)
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout,
                                  transport=transport)

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, params=call.params,
                                              json=call.body)
                return _answer(call, response)
            except Exception as exc:
                wait = self._wait(call, attempt, exc)
            time.sleep(wait)
            attempt += 1

    def iter_task_events(self, task: str, *, batch_size: int = 500,
                         event_type: str | None = None, order: str | None = None
                         ) -> Iterator[Doc]:
        """Every event of the task, following scroll ids to the end (one request a page)."""
        return self._walk(self._events_pages(task, batch_size, event_type, order))

    def iter_task_log(self, task: str, *, batch_size: int = 500,
                      navigate_earlier: bool = False) -> Iterator[Doc]:
        """Every log line of the task (oldest first unless `navigate_earlier`)."""
        return self._walk(self._log_pages(task, batch_size, navigate_earlier))

    @staticmethod
    def _walk(page_of: Callable[[str | None], Any]) -> Iterator[Doc]:
        scroll: str | None = None
        while True:
            page = page_of(scroll)
            if not page.events:
                return
            yield from page.events
            scroll = page.scroll_id

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio read client: `Client`'s methods as coroutines."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = 30.0, retries: int = 0, max_retry_wait: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(url, api_key, retries=retries, max_retry_wait=max_retry_wait)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers,
                                       timeout=timeout, transport=transport)

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, params=call.params,
                                                    json=call.body)
                return _answer(call, response)
            except Exception as exc:
                wait = self._wait(call, attempt, exc)
            await asyncio.sleep(wait)
            attempt += 1

    def iter_task_events(self, task: str, *, batch_size: int = 500,
                         event_type: str | None = None, order: str | None = None
                         ) -> AsyncIterator[Doc]:
        return self._walk(self._events_pages(task, batch_size, event_type, order))

    def iter_task_log(self, task: str, *, batch_size: int = 500,
                      navigate_earlier: bool = False) -> AsyncIterator[Doc]:
        return self._walk(self._log_pages(task, batch_size, navigate_earlier))

    @staticmethod
    async def _walk(page_of: Callable[[str | None], Awaitable[Any]]) -> AsyncIterator[Doc]:
        scroll: str | None = None
        while True:
            page = await page_of(scroll)
            if not page.events:
                return
            for event in page.events:
                yield event
            scroll = page.scroll_id

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
