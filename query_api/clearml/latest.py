"""The 2.7 navigation of plots and debug images (`events.plots`, `events.debug_images` with
`metrics`): the next iterations of each (task, metric), earlier or later, with every metric's
position kept in a signed scroll id."""

from __future__ import annotations

from typing import Any

from query_api.clearml import events_store
from query_api.clearml import task_events_store as task_events_db
from query_api.clearml.calls import (
    INT64_MAX,
    INT64_MIN,
    Call,
    get_bool,
    scroll_codec,
    scroll_state,
)
from query_api.clearml.task_events_store import event_from_row
from query_api.params import get_int

__all__ = ["next_iterations"]


async def next_iterations(call: Call, metrics: list[dict[str, Any]], event_type: str,
                          tag: str) -> dict[str, Any]:
    """`metrics` ({task, metric (optional: every metric of the task)}, checked by the caller)
    walked by one page; `tag` names the walk in its scroll ids."""
    iters = get_int(call.body, "iters", default=1, lo=1, hi=1000)
    assert iters is not None
    earlier = get_bool(call.body, "navigate_earlier", True)
    refresh = get_bool(call.body, "refresh", False)
    store = call.ctx.store
    tasks = list(dict.fromkeys(m["task"] for m in metrics))
    tenant = await task_events_db.resolve_tenant(store, call.key, tasks)
    known = await events_store.metrics_with(store, tenant, tasks, event_type)
    pairs: list[tuple[str, str]] = []
    for m in metrics:
        if m.get("metric"):
            pairs.append((m["task"], m["metric"]))
        else:
            pairs.extend(p for p in known if p[0] == m["task"])
    pairs = list(dict.fromkeys(pairs))[:100]
    state = scroll_state(call, {"a": tag, "t": tenant, "e": earlier})
    positions: dict[str, int] = {} if state is None or refresh else dict(state["p"])
    default = INT64_MAX if earlier else INT64_MIN
    bounds = [positions.get(f"{t}\x1f{m}", default) for t, m in pairs]
    rows = await events_store.latest_per_metric(store, tenant, event_type, pairs, bounds,
                                                default, earlier=earlier, iters=iters)
    grouped: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {p: {} for p in pairs}
    for r in rows:
        e = event_from_row(r)
        grouped[(e["task"], e["metric"])].setdefault(e["iter"], []).append(e)
    out = []
    for (task, metric), by_iter in grouped.items():
        if by_iter:
            positions[f"{task}\x1f{metric}"] = list(by_iter)[-1]
        out.append({"task": task, "metric": metric,
                    "iterations": [{"iter": i, "events": evs} for i, evs in by_iter.items()]})
    scroll_id = scroll_codec(call.ctx).encode({"a": tag, "t": tenant, "e": earlier, "p": positions})
    return {"metrics": out, "scroll_id": scroll_id}
