"""Tasks and projects as clearml-server shapes them: creation defaults, `tasks.edit` merging,
the status state machine, `get_all` filters, ordering, paging and `only_fields`. Pure: documents
are plain dicts (JSON), times ISO 8601 strings in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from query_api.clearml.envelope import INVALID_TASK_STATUS, CallError
from query_api.errors import bad_param

__all__ = [
    "CREATE_FIELDS",
    "STATES",
    "STATUSES",
    "TASK_TYPES",
    "change_status",
    "configuration_list",
    "edit_configuration",
    "edit_hyperparams",
    "edit_task",
    "hyperparams_list",
    "ids",
    "iso",
    "matches",
    "new_project",
    "new_task",
    "order_and_page",
    "project_fields",
    "reset_task",
]

STATUSES = ("created", "queued", "in_progress", "stopped", "publishing", "published", "closed",
            "failed", "completed", "unknown")
TASK_TYPES = ("training", "testing", "inference", "data_processing", "application", "monitor",
              "controller", "optimizer", "service", "qc", "custom")
#: clearml-server's status state machine (apiserver/bll/task/utils.py); `force` skips it.
STATES: dict[str, frozenset[str]] = {
    "created": frozenset({"queued", "in_progress"}),
    "queued": frozenset({"created", "in_progress", "stopped"}),
    "in_progress": frozenset({"stopped", "failed", "created", "completed"}),
    "stopped": frozenset({"closed", "created", "failed", "queued", "in_progress", "published",
                          "publishing", "completed"}),
    "closed": frozenset({"created", "failed", "published", "publishing", "stopped"}),
    "failed": frozenset({"created", "stopped", "published", "queued"}),
    "publishing": frozenset({"published"}),
    "published": frozenset(),
    "completed": frozenset({"published", "in_progress", "created"}),
}
#: The fields tasks.create and tasks.edit take (clearml-server `create_fields`).
CREATE_FIELDS = frozenset({
    "name", "tags", "system_tags", "type", "comment", "parent", "project", "input", "output",
    "output_dest", "execution", "hyperparams", "configuration", "script", "models",
    "container", "runtime", "status_reason", "status_message"})
_DICT_FIELDS = frozenset({"execution", "script", "output", "input", "hyperparams",
                          "configuration", "models", "container", "runtime"})


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _fields(body: Mapping[str, Any]) -> dict[str, Any]:
    # other fields are ignored, as clearml-server does (the SDK sends e.g. `method`)
    out = {k: v for k, v in body.items() if k in CREATE_FIELDS}
    for k in ("name", "comment", "parent", "project", "status_reason", "status_message"):
        if k in out and out[k] is not None and not isinstance(out[k], str):
            raise bad_param(k, out[k], f"{k} must be a string")
    for k in ("tags", "system_tags"):
        if k in out and (not isinstance(out[k], list)
                         or not all(isinstance(t, str) for t in out[k])):
            raise bad_param(k, out[k], f"{k} must be a list of strings")
    for k in _DICT_FIELDS & out.keys():
        if out[k] is not None and not isinstance(out[k], dict):
            raise bad_param(k, out[k], f"{k} must be an object")
    if "type" in out and out["type"] not in TASK_TYPES:
        raise bad_param("type", out["type"], "type must be one of " + ", ".join(TASK_TYPES),
                        TASK_TYPES)
    dest = out.pop("output_dest", None)
    if dest is not None:
        out["output"] = {**(out.get("output") or {}), "destination": dest}
    return out


def new_task(body: Mapping[str, Any], *, task_id: str, tenant: str, user: str,
             now: float) -> dict[str, Any]:
    """A task as tasks.create stores it: the body's fields over clearml-server's defaults."""
    fields = _fields(body)
    if not fields.get("name"):
        raise bad_param("name", fields.get("name"), "name is required")
    if not fields.get("type"):
        raise bad_param("type", None, "type is required", TASK_TYPES)
    t = iso(now)
    doc: dict[str, Any] = {
        "id": task_id, "name": "", "user": user, "company": tenant, "type": "training",
        "status": "created", "comment": "", "created": t, "last_update": t, "last_change": t,
        "last_changed_by": user, "status_changed": t, "status_reason": "",
        "status_message": "", "tags": [], "system_tags": [], "project": None, "parent": None,
        "output": {}, "execution": {}, "script": {}, "hyperparams": {}, "configuration": {},
        "models": {}, "container": {}, "runtime": {}, "last_iteration": 0, "last_metrics": {},
    }
    doc.update(fields)
    return doc


def edit_task(doc: dict[str, Any], body: Mapping[str, Any], *, user: str, now: float
              ) -> dict[str, Any]:
    """tasks.edit: only a task in `created` unless `force`; object fields are merged one level
    deep (as clearml-server merges embedded documents), the rest replaced. Returns the fields
    changed, as clearml-server's `fields`."""
    if not body.get("force") and doc.get("status") != "created":
        raise CallError(400, "INVALID_PARAMETERS",
                        f"invalid task status: expected created, task is {doc.get('status')}",
                        INVALID_TASK_STATUS,
                        {"parameter": "force", "expected": "created",
                         "status": doc.get("status")})
    fields = _fields(body)
    for k, v in list(fields.items()):
        if k in _DICT_FIELDS and isinstance(v, dict) and isinstance(doc.get(k), dict):
            fields[k] = {**doc[k], **v}
    if fields:
        t = iso(now)
        fields.update(last_change=t, last_changed_by=user, last_update=t)
        doc.update(fields)
    return fields


def change_status(doc: dict[str, Any], new_status: str, *, force: bool, reason: str,
                  message: str, user: str, now: float, **extra: Any) -> dict[str, Any]:
    """Move the task to `new_status` (clearml-server's ChangeStatusRequest); the changed fields.
    """
    current = str(doc.get("status", "created"))
    if not force and new_status != current and new_status not in STATES.get(current, ()):
        raise CallError(400, "INVALID_PARAMETERS",
                        f"invalid task status: cannot change from {current} to {new_status}",
                        INVALID_TASK_STATUS,
                        {"parameter": "force", "current_status": current,
                         "new_status": new_status})
    t = iso(now)
    fields: dict[str, Any] = {"status": new_status, "status_reason": reason,
                              "status_message": message, "status_changed": t,
                              "last_update": t, "last_change": t, "last_changed_by": user}
    fields.update(extra)
    doc.update(fields)
    return fields


def reset_task(doc: dict[str, Any], *, force: bool, clear_all: bool, user: str, now: float
               ) -> dict[str, Any]:
    """tasks.reset (clearml-server's reset_task): back to `created` with its run state cleared
    (started, completed, last iteration and metrics, runtime; with `clear_all` the script and
    execution too). A published task needs `force`. Returns the changed fields."""
    if not force and doc.get("status") == "published":
        raise CallError(400, "INVALID_PARAMETERS", "invalid task status: a published task is "
                        "reset only with force", INVALID_TASK_STATUS,
                        {"parameter": "force", "status": "published"})
    for gone in ("started", "completed", "published", "last_worker", "active_duration"):
        doc.pop(gone, None)
    cleared: dict[str, Any] = {"last_iteration": 0, "last_metrics": {}, "runtime": {}}
    if clear_all:
        doc.pop("script", None)
        cleared["execution"] = {}
    doc.update(cleared)
    fields = change_status(doc, "created", force=True, reason="reset", message="reset",
                           user=user, now=now)
    return {**cleared, **fields}


_ITEM_FIELDS = ("section", "name", "value", "type", "description")


def _items(raw: Any, name: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) and i["name"]
            and all(i.get(f) is None or isinstance(i.get(f), str) for f in fields)
            for i in raw):
        raise bad_param(name, raw, f"{name} must be a list of {{{', '.join(fields)}}} with "
                        f"string values and a name")
    return [{f: i[f] for f in fields if i.get(f) is not None} for i in raw]


def _editable(doc: Mapping[str, Any], force: bool, any_status: bool = False) -> None:
    if not (force or any_status or doc.get("status") == "created"):
        raise CallError(400, "INVALID_PARAMETERS",
                        f"invalid task status: expected created, task is {doc.get('status')}",
                        INVALID_TASK_STATUS,
                        {"parameter": "force", "expected": "created",
                         "status": doc.get("status")})


def _dict(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key)
    return v if isinstance(v, dict) else {}


def edit_hyperparams(doc: dict[str, Any], raw: Any, *, replace: str, force: bool, user: str,
                     now: float) -> int:
    """tasks.edit_hyper_params: items {section, name, value, type, description} into
    `hyperparams[section][name]`; `replace` `none` (merge), `section` or `all`. A task not in
    `created` needs `force`, unless only the `properties` section changes."""
    items = _items(raw, "hyperparams", _ITEM_FIELDS)
    for i in items:
        i["section"] = i.get("section", "")
        if i["section"].lower() == "properties":
            i["section"] = "properties"
    _editable(doc, force, bool(items) and all(i["section"] == "properties" for i in items))
    sections: dict[str, dict[str, Any]] = {}
    for i in items:
        sections.setdefault(i["section"], {})[i["name"]] = i
    current = _dict(doc, "hyperparams")
    if replace == "all":
        merged = sections
    elif replace == "section":
        merged = {**current, **sections}
    else:
        merged = {k: dict(v) for k, v in current.items()}
        for section, params in sections.items():
            merged.setdefault(section, {}).update(params)
    doc["hyperparams"] = merged
    t = iso(now)
    doc.update(last_change=t, last_changed_by=user, last_update=t)
    return 1


def edit_configuration(doc: dict[str, Any], raw: Any, *, replace: bool, force: bool,
                       user: str, now: float) -> int:
    """tasks.edit_configuration: items {name, value, type, description} into
    `configuration[name]` (all replaced with `replace`). A task not in `created` needs
    `force`."""
    items = _items(raw, "configuration", _ITEM_FIELDS[1:])
    _editable(doc, force)
    current = _dict(doc, "configuration")
    doc["configuration"] = {**({} if replace else current), **{i["name"]: i for i in items}}
    t = iso(now)
    doc.update(last_change=t, last_changed_by=user, last_update=t)
    return 1


def hyperparams_list(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    sections = _dict(doc, "hyperparams")
    items = [p for params in sections.values() if isinstance(params, dict)
             for p in params.values() if isinstance(p, dict)]
    return sorted(items, key=lambda p: (str(p.get("section", "")), str(p.get("name", ""))))


def configuration_list(doc: Mapping[str, Any], names: Sequence[str] | None
                       ) -> list[dict[str, Any]]:
    conf = _dict(doc, "configuration")
    return [c for n, c in sorted(conf.items())
            if isinstance(c, dict) and (not names or n in names)]


def new_project(body: Mapping[str, Any], *, project_id: str, tenant: str, user: str,
                now: float) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_param("name", name, "name is required (a project name)")
    description = body.get("description", "")
    if description is not None and not isinstance(description, str):
        raise bad_param("description", description, "description must be a string")
    doc: dict[str, Any] = {
        "id": project_id, "name": name.strip(), "basename": name.strip().split("/")[-1],
        "description": description or "", "user": user, "company": tenant, "tags": [],
        "system_tags": [], "default_output_destination": None, "created": iso(now),
        "last_update": iso(now)}
    for k in ("tags", "system_tags"):
        v = body.get(k)
        if v is not None:
            if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
                raise bad_param(k, v, f"{k} must be a list of strings")
            doc[k] = v
    dest = body.get("default_output_destination")
    if isinstance(dest, str):
        doc["default_output_destination"] = dest
    return doc


def _listed(v: Any) -> list[Any] | None:
    if v is None:
        return None
    return v if isinstance(v, list) else [v]


def ids(query: Mapping[str, Any], name: str, *, max_items: int = 1000) -> list[str] | None:
    """A filter of ids (one id or a list of them), or None when absent."""
    v = _listed(query.get(name))
    if v is None:
        return None
    if len(v) > max_items or not all(isinstance(i, str) and len(i) <= 128 for i in v):
        raise bad_param(name, query.get(name),
                        f"{name} must be an id or a list of at most {max_items} ids")
    return v


def _tags_match(have: Iterable[str], wanted: Sequence[str]) -> bool:
    """clearml-server's tag filter: any of the plain tags, none of the `-`-prefixed ones."""
    have = set(have)
    include = [t for t in wanted if not t.startswith("-")]
    exclude = [t[1:] for t in wanted if t.startswith("-")]
    if include and not have.intersection(include):
        return False
    return not have.intersection(exclude)


def matches(doc: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """Whether `doc` passes a get_all query's filters: field values (a value or a list of
    values: any of them), `name` as a regular expression, tags, and hidden entities only with
    `search_hidden`."""
    for k, v in query.items():
        if k in ("only_fields", "order_by", "page", "page_size", "search_hidden", "size",
                 "scroll_id", "refresh_scroll", "include_subprojects", "_allow_extra_fields_",
                 "api_key", "search_text", "allow_public", "stats_for_state",
                 "check_own_contents", "shallow_search"):
            continue
        if k == "name":
            if not isinstance(v, str):
                raise bad_param("name", v, "name must be a regular expression (a string)")
            try:
                if re.search(v, str(doc.get("name", ""))) is None:
                    return False
            except re.error as exc:
                raise bad_param("name", v, f"name: malformed regular expression: {exc}") \
                    from None
        elif k in ("tags", "system_tags"):
            tags = _listed(v) or []
            if not _tags_match(doc.get(k) or [], [str(t) for t in tags]):
                return False
        elif k in ("id", "project", "status", "type", "parent", "user", "basename"):
            wanted = _listed(v)
            if wanted is not None and doc.get(k) not in wanted:
                return False
    hidden = "hidden" in (doc.get("system_tags") or [])
    asked = query.get("search_hidden") or "hidden" in (_listed(query.get("system_tags")) or [])
    return not hidden or bool(asked)


def order_and_page(docs: list[dict[str, Any]], query: Mapping[str, Any], *,
                   max_page_size: int) -> list[dict[str, Any]]:
    order = _listed(query.get("order_by")) or []
    for field in reversed(order):
        if not isinstance(field, str) or not field.lstrip("-"):
            raise bad_param("order_by", order, "order_by must be a list of field names")
        name = field.lstrip("-")
        # the default argument binds this field to the lambda; mypy cannot type lambda defaults
        docs.sort(key=lambda d, n=name: (d.get(n) is not None, str(d.get(n) or "")),  # type: ignore[misc]
                  reverse=field.startswith("-"))
    page, size = query.get("page"), query.get("page_size") or query.get("size")
    if page is not None or size is not None:
        if not isinstance(page or 0, int) or not isinstance(size or max_page_size, int) or \
                (page or 0) < 0 or not 0 < (size or max_page_size) <= max_page_size:
            raise bad_param("page_size", size, f"page must be >= 0 and page_size 1 to "
                            f"{max_page_size}", allowed_range=(1, max_page_size))
        size = size or max_page_size
        docs = docs[(page or 0) * size:((page or 0) + 1) * size]
    return docs[:max_page_size]


def project_fields(doc: Mapping[str, Any], only_fields: Any) -> dict[str, Any]:
    """`doc` reduced to `only_fields` (dotted paths), always with its id."""
    if not only_fields:
        return dict(doc)
    if isinstance(only_fields, str):  # one field from a query string
        only_fields = [only_fields]
    if not isinstance(only_fields, list) or not all(isinstance(f, str) for f in only_fields):
        raise bad_param("only_fields", only_fields, "only_fields must be a list of field names")
    out: dict[str, Any] = {"id": doc.get("id")}
    for path in only_fields:
        parts = path.split(".")
        src: Any = doc
        for p in parts:
            src = src.get(p) if isinstance(src, dict) else None
        if src is None and not (len(parts) == 1 and parts[0] in doc):
            continue
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = src
    return out
