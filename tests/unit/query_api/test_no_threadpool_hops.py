"""Every route handler and every dependency is a coroutine function: FastAPI runs a plain `def`
in its thread pool, a thread hop (and a GIL hand-over) per request and per dependency, which
cost the API a third of its requests/s under 50 concurrent clients (bench/results.md)."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.routing import APIRoute

from query_api import app as app_module


def _routers() -> list[Any]:
    return [obj.router for obj in vars(app_module).values()
            if inspect.ismodule(obj) and hasattr(obj, "router")]


def _calls(dependant: Any) -> list[Any]:
    found = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found += _calls(sub)
    return found


def test_handlers_and_dependencies_are_coroutines() -> None:
    routes = [r for router in _routers() for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50  # every family's routes are walked
    sync = sorted({f"{c.__module__}.{c.__qualname__}" for r in routes for c in _calls(r.dependant)
                   if not inspect.iscoroutinefunction(c)})
    assert sync == []
