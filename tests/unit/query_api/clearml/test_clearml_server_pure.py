"""Pure parts of the ClearML server calls: session tokens, the call convention and envelope,
task/project shapes (clearml-server's state machine, edit merging, get_all filters)."""

from __future__ import annotations

import base64

import orjson
import pytest

from query_api.clearml import envelope, shapes, tokens
from query_api.errors import ApiError

SECRET = tokens.derive_secret(b"s3cret")


def test_token_round_trip_and_claims_the_sdk_reads():
    tok = tokens.encode(SECRET, key_id="abc123def456", tenant="acme", role="admin",
                        now=1_000.0, expiration_s=60)
    claims = tokens.decode(SECRET, tok, now=1_059.0)
    assert (claims.key_id, claims.tenant, claims.role, claims.exp) == (
        "abc123def456", "acme", "admin", 1_060)
    body = orjson.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert body["api_version"] == tokens.API_VERSION == "2.23"
    assert body["feature_set"] == "basic" and body["identity"]["company"] == "acme"
    assert tokens.looks_like_token(tok) and not tokens.looks_like_token("vk_abc_def")


@pytest.mark.parametrize("mutate, reason", [
    (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), "signature"),
    (lambda t: "x.y", "malformed"),
    (lambda t: "a.b.c", "malformed"),
])
def test_token_refused_when_tampered_or_malformed(mutate, reason):
    tok = tokens.encode(SECRET, key_id="k" * 12, tenant="t", role="reader", now=0,
                        expiration_s=60)
    with pytest.raises(tokens.TokenInvalid, match=reason):
        tokens.decode(SECRET, mutate(tok), now=1)


def test_token_expired_and_foreign_secret():
    tok = tokens.encode(SECRET, key_id="k" * 12, tenant="t", role="reader", now=0,
                        expiration_s=60)
    with pytest.raises(tokens.TokenInvalid, match="expired"):
        tokens.decode(SECRET, tok, now=60)
    with pytest.raises(tokens.TokenInvalid, match="signature"):
        tokens.decode(tokens.derive_secret(b"other"), tok, now=1)


@pytest.mark.parametrize("path, parsed", [
    ("/events.add", ("events.add", None)),
    ("/v2.23/events.get_task_log", ("events.get_task_log", "2.23")),
    ("/v2.9/tasks.create/", ("tasks.create", "2.9")),
    ("/v1/auth.login", ("auth.login", "1")),
    ("/healthz", None), ("/v2/endpoints/1/metrics", None), ("/get_endpoint_stats/", None),
])
def test_call_paths(path, parsed):
    assert envelope.parse_path(path) == parsed


def test_versions():
    assert envelope.parse_version("2.23") == (2, 23)
    assert envelope.parse_version("v1") == (1, 0)
    assert envelope.parse_version(None) is None
    for bad in ("x", "2.x", "2.3.4"):
        with pytest.raises(ValueError):
            envelope.parse_version(bad)


def test_query_string_merged_into_the_body_as_clearml_server_does():
    body = envelope.merge_query({"task": "t"}, [("expiration_sec", "60"), ("enabled", "true"),
                                                ("types", "a"), ("types", "b"),
                                                ("ids[]", "x"), ("a.b", "1.5")])
    assert body == {"task": "t", "expiration_sec": 60, "enabled": True, "types": ["a", "b"],
                    "ids": ["x"], "a": {"b": 1.5}}


def test_error_document_keeps_vitals_fields_and_adds_meta():
    doc = envelope.error_document("events.add", (2, 23), 400, {
        "error": "INVALID_PARAMETERS", "message": "task is required",
        "details": {"parameter": "task"}})
    meta = doc["meta"]
    assert (meta["result_code"], meta["result_subcode"], meta["result_msg"]) == (
        400, 12, "task is required")
    assert meta["endpoint"] == {"name": "events.add", "requested_version": "2.23",
                                "actual_version": "2.23"}
    assert meta["error_data"] == {"parameter": "task"} and doc["data"] == {}
    assert doc["error"] == "INVALID_PARAMETERS" and doc["details"] == {"parameter": "task"}
    err = envelope.CallError(401, "UNAUTHORIZED", "invalid token", envelope.INVALID_TOKEN)
    assert envelope.subcode_of(err.code, err) == 30
    assert envelope.subcode_of("UNAUTHORIZED") == 22
    assert envelope.subcode_of("NOT_FOUND") == 0


def task(**over):
    doc = shapes.new_task({"name": "n", "type": "training", "project": "p", **over},
                          task_id="T", tenant="acme", user="u", now=0)
    return doc


def test_new_task_defaults_and_required_fields():
    doc = task(output_dest="s3://b", comment="c")
    assert (doc["status"], doc["company"], doc["user"], doc["comment"]) == (
        "created", "acme", "u", "c")
    assert doc["output"] == {"destination": "s3://b"}
    assert doc["created"] == doc["last_update"] == "1970-01-01T00:00:00.000+00:00"
    with pytest.raises(ApiError) as e:
        shapes.new_task({"type": "training"}, task_id="T", tenant="t", user="u", now=0)
    assert e.value.details["parameter"] == "name"
    with pytest.raises(ApiError) as e:
        task(type="nope")
    assert e.value.details["allowedValues"] == list(shapes.TASK_TYPES)


def test_edit_merges_objects_one_level_and_needs_created_or_force():
    doc = task(script={"entry_point": "a.py", "branch": "main"})
    fields = shapes.edit_task(doc, {"task": "T", "script": {"branch": "dev"}, "method": "get"},
                              user="u2", now=5)
    assert doc["script"] == {"entry_point": "a.py", "branch": "dev"}
    assert fields["script"] == doc["script"] and fields["last_changed_by"] == "u2"
    shapes.change_status(doc, "in_progress", force=False, reason="", message="", user="u",
                         now=6)
    with pytest.raises(envelope.CallError) as e:
        shapes.edit_task(doc, {"name": "x"}, user="u", now=7)
    assert (e.value.status, e.value.subcode) == (400, envelope.INVALID_TASK_STATUS)
    shapes.edit_task(doc, {"name": "x", "force": True}, user="u", now=7)
    assert doc["name"] == "x"


def test_status_follows_clearml_servers_state_machine():
    doc = task()
    shapes.change_status(doc, "in_progress", force=False, reason="", message="", user="u",
                         now=1)
    shapes.change_status(doc, "completed", force=False, reason="done", message="", user="u",
                         now=2, completed="c")
    assert (doc["status"], doc["status_reason"], doc["completed"]) == ("completed", "done", "c")
    shapes.change_status(doc, "published", force=False, reason="", message="", user="u", now=3)
    with pytest.raises(envelope.CallError):
        shapes.change_status(doc, "in_progress", force=False, reason="", message="", user="u",
                             now=4)
    shapes.change_status(doc, "in_progress", force=True, reason="", message="", user="u", now=4)
    assert doc["status"] == "in_progress"


def test_get_all_filters_order_page_and_only_fields():
    docs = [dict(task(), id=f"T{i}", name=f"run {i}", status=s, system_tags=tags)
            for i, (s, tags) in enumerate([("created", []), ("completed", ["development"]),
                                           ("completed", ["hidden"])])]
    pick = lambda q: [d["id"] for d in docs if shapes.matches(d, q)]  # noqa: E731
    assert pick({}) == ["T0", "T1"]
    assert pick({"search_hidden": True}) == ["T0", "T1", "T2"]
    assert pick({"status": ["completed"]}) == ["T1"]
    assert pick({"name": r"^run 1$"}) == ["T1"]
    assert pick({"system_tags": ["-development"]}) == ["T0"]
    assert pick({"id": "T0"}) == ["T0"]
    with pytest.raises(ApiError):
        pick({"name": "("})
    ordered = shapes.order_and_page(list(docs), {"order_by": ["-name"], "page": 0,
                                                 "page_size": 2}, max_page_size=10)
    assert [d["id"] for d in ordered] == ["T2", "T1"]
    assert shapes.project_fields(docs[0], ["status", "output.destination", "script.x"]) == {
        "id": "T0", "status": "created"}
    assert shapes.project_fields({"id": "a", "output": {"destination": "d"}},
                                 ["output.destination"]) == {
        "id": "a", "output": {"destination": "d"}}


def test_new_project():
    doc = shapes.new_project({"name": " a/b ", "system_tags": ["x"]}, project_id="P",
                             tenant="t", user="u", now=0)
    assert (doc["name"], doc["basename"], doc["system_tags"]) == ("a/b", "b", ["x"])
    with pytest.raises(ApiError):
        shapes.new_project({"name": ""}, project_id="P", tenant="t", user="u", now=0)


def test_reset_clears_the_run_and_refuses_a_published_task_without_force():
    doc = task(script={"entry_point": "a.py"}, runtime={"progress": "100"})
    shapes.change_status(doc, "in_progress", force=False, reason="", message="", user="u",
                         now=1, started="s")
    doc.update(last_iteration=7, completed="c")
    fields = shapes.reset_task(doc, force=False, clear_all=False, user="u", now=2)
    assert (doc["status"], doc["status_reason"], doc["last_iteration"], doc["runtime"]) == (
        "created", "reset", 0, {})
    assert "started" not in doc and "completed" not in doc
    assert doc["script"] == {"entry_point": "a.py"} and fields["status"] == "created"
    shapes.reset_task(doc, force=False, clear_all=True, user="u", now=3)
    assert "script" not in doc and doc["execution"] == {}
    doc["status"] = "published"
    with pytest.raises(envelope.CallError):
        shapes.reset_task(doc, force=False, clear_all=False, user="u", now=4)
    shapes.reset_task(doc, force=True, clear_all=False, user="u", now=4)


def test_hyperparams_and_configuration_edits():
    doc = task()
    item = {"section": "General", "name": "lr", "value": "0.1", "type": "float"}
    shapes.edit_hyperparams(doc, [item, {"section": "Args", "name": "bs", "value": "32"}],
                            replace="none", force=False, user="u", now=1)
    shapes.edit_hyperparams(doc, [{**item, "value": "0.2"}], replace="none", force=False,
                            user="u", now=2)
    assert [(p["section"], p["name"], p["value"]) for p in shapes.hyperparams_list(doc)] == [
        ("Args", "bs", "32"), ("General", "lr", "0.2")]
    shapes.edit_hyperparams(doc, [{"section": "General", "name": "wd", "value": "1"}],
                            replace="section", force=False, user="u", now=3)
    assert [p["name"] for p in shapes.hyperparams_list(doc)] == ["bs", "wd"]
    shapes.change_status(doc, "in_progress", force=False, reason="", message="", user="u",
                         now=4)
    with pytest.raises(envelope.CallError):
        shapes.edit_hyperparams(doc, [item], replace="none", force=False, user="u", now=5)
    shapes.edit_hyperparams(doc, [{"section": "Properties", "name": "p", "value": "x"}],
                            replace="none", force=False, user="u", now=5)  # any status
    with pytest.raises(ApiError):
        shapes.edit_hyperparams(doc, [{"section": "General", "value": "x"}], replace="none",
                                force=True, user="u", now=6)
    shapes.edit_configuration(doc, [{"name": "model", "value": "{}", "type": "dictionary"}],
                              replace=False, force=True, user="u", now=7)
    assert shapes.configuration_list(doc, ["model"]) == [
        {"name": "model", "value": "{}", "type": "dictionary"}]
    assert shapes.configuration_list(doc, ["other"]) == []
