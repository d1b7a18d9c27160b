"""The ClearML SDK (the `clearml` package, unchanged) against a live Vitals API.

A subprocess runs `sdk_script.py` with the CLEARML_* environment pointing at the API started by
the test (access key = a Vitals key's id, secret key = the key). It must run without an error or
a retry, and everything it reported must read back exactly through the events API (and the
task through tasks.*, and the analysts' table)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import orjson

SCRIPT = Path(__file__).with_name("sdk_script.py")
PROJECT = "vitals/sdk"
TRAIN = [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
EVAL = [2.5, 2.0, 1.5, 1.0, 0.5]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DOC = Path(__file__).parents[3] / "docs" / "task-events.md"


def doc_example() -> tuple[str, str]:
    """The shell and Python examples of docs/task-events.md's SDK section."""
    text = DOC.read_text().split("## The ClearML SDK, unchanged", 1)[1]
    shell = text.split("```bash", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    python = text.split("```python", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    return shell, python


async def run_sdk(stack: Any, key: str, workdir: Path, source: str | None = None
                  ) -> tuple[int, str]:
    """Run the script (copied outside any git checkout) with the SDK's own configuration
    variables; returns (exit code, stdout + stderr)."""
    workdir.mkdir(exist_ok=True)
    if source is None:
        shutil.copy(SCRIPT, workdir / "train.py")
    else:
        (workdir / "train.py").write_text(source)
    files = f"http://127.0.0.1:{_free_port()}"  # nothing listens: report_image uses url=
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir),
           "CLEARML_API_HOST": stack.rt.api_url, "CLEARML_WEB_HOST": files,
           "CLEARML_FILES_HOST": files, "CLEARML_API_ACCESS_KEY": key.split("_")[1],
           "CLEARML_API_SECRET_KEY": key, "CLEARML_OFFLINE_MODE": "0",
           "CLEARML_CONFIG_FILE": str(workdir / "no-clearml.conf"),
           "CLEARML_LOG_LEVEL": "DEBUG", "SDK_PROJECT": PROJECT}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "train.py", cwd=workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def route_counts(stack: Any) -> dict[str, int]:
    counts = {}
    for line in stack.rt.telemetry.render().splitlines():
        m = re.match(r'vitals_api_request_seconds_count\{route="([^"]+)"\} (\d+)', line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


async def clearml(stack: Any, key: str, call: str, body: dict[str, Any],
                  method: str = "GET") -> dict[str, Any]:
    """A call as the SDK makes it: GET with a JSON body under /v2.23/."""
    r = await stack.http.request(method, f"/v2.23/{call}", content=orjson.dumps(body),
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    doc = r.json()
    assert r.status_code == 200 and doc["meta"]["result_code"] == 200, doc
    assert doc["meta"]["endpoint"]["name"] == call
    return doc["data"]


async def test_sdk_runs_unchanged_and_reads_back_exactly(stack_factory, tmp_path):
    stack = await stack_factory()
    admin = await stack.key("acme", "admin")
    rc, out = await run_sdk(stack, admin, tmp_path)
    assert rc == 0, out
    for bad in ("ERROR", "Action failed", "Retrying", "Traceback", "Missing meta",
                "failed", "Failed"):
        assert bad not in out, out
    task = out.strip().splitlines()[-1].removeprefix("TASK_ID=")

    # every call found a route (no 404/405: those count as "unmatched"), one login, no loops
    counts = route_counts(stack)
    assert "unmatched" not in counts, counts
    assert counts.get("/auth.login", 0) + counts.get("/v{version}/auth.login", 0) == 1, counts
    assert all(n <= 10 for n in counts.values()), counts
    assert {"/v{version}/tasks.create", "/v{version}/tasks.started",
            "/v{version}/tasks.completed", "/v{version}/events.add_batch"} <= set(counts)

    reader = await stack.key("acme", "reader")
    # the project and the task, as tasks.* and projects.* serve them
    projects = (await clearml(stack, reader, "projects.get_all",
                              {"name": f"^{re.escape(PROJECT)}$"}))["projects"]
    assert [p["name"] for p in projects] == [PROJECT]
    doc = (await clearml(stack, reader, "tasks.get_by_id", {"task": task}))["task"]
    assert (doc["id"], doc["name"], doc["type"], doc["status"], doc["project"],
            doc["company"], doc["system_tags"], doc["last_iteration"]) == (
        task, "sdk run", "training", "completed", projects[0]["id"], "acme", ["development"], 4)
    assert doc["script"]["entry_point"] == "train.py"
    assert "clearml == 2.1.12" in doc["script"]["requirements"]["pip"]
    assert doc["created"] <= doc["started"] <= doc["completed"] <= doc["last_update"]
    listed = (await clearml(stack, reader, "tasks.get_all",
                            {"project": [projects[0]["id"]], "only_fields": ["status"]},
                            method="POST"))["tasks"]
    assert listed == [{"id": task, "status": "completed"}]
    params = (await clearml(stack, reader, "tasks.get_hyper_params", {"tasks": [task]}))
    values = {(p["section"], p["name"]): p["value"] for p in params["params"][0]["hyperparams"]}
    assert values == {("Args", "batch_size"): "32", ("General", "lr"): "0.1",
                      ("General", "epochs"): "3"}
    conf = (await clearml(stack, reader, "tasks.get_configurations",
                          {"tasks": [task], "names": ["model"]}))["configurations"]
    assert [c["name"] for c in conf[0]["configuration"]] == ["model"]
    assert "64" in conf[0]["configuration"][0]["value"]
    rows = await stack.rows("SELECT tenant, name, status, project, last_iteration "
                            f"FROM {{db}}.clearml_tasks FINAL WHERE id = '{task}'")
    assert rows == [("acme", "sdk run", "completed", projects[0]["id"], 4)]

    # scalars: every value, at its iteration
    hist = await clearml(stack, reader, "events.scalar_metrics_iter_histogram", {"task": task})
    assert set(hist) == {"loss"} and set(hist["loss"]) == {"train", "eval"}
    assert hist["loss"]["train"]["x"] == [0, 1, 2, 3, 4]
    assert hist["loss"]["train"]["y"] == TRAIN
    assert hist["loss"]["eval"]["y"] == EVAL
    multi = await clearml(stack, reader, "events.multi_task_scalar_metrics_iter_histogram",
                          {"tasks": [task]})
    assert multi["metrics"]["loss"]["train"][task]["name"] == "sdk run"
    assert multi["metrics"]["loss"]["eval"][task]["y"] == EVAL
    data = await clearml(stack, reader, "events.get_scalar_metric_data",
                         {"task": task, "metric": "loss"})
    got = sorted((e["variant"], e["iter"], e["value"]) for e in data["events"])
    assert got == sorted([("train", i, v) for i, v in enumerate(TRAIN)]
                         + [("eval", i, v) for i, v in enumerate(EVAL)])

    # report_text and the console (stdout at info, stderr at error)
    log = await clearml(stack, reader, "events.get_task_log",
                        {"task": task, "navigate_earlier": False, "batch_size": 1000})
    lines = [(e["level"], line) for e in log["events"] for line in e["msg"].splitlines()]
    assert ("info", "a text report") in lines
    assert ("info", "console line from the script") in lines
    assert ("error", "to stderr") in lines

    # plotly figure, table and histogram: the figures the SDK built, as it sent them
    plots = (await clearml(stack, reader, "events.get_task_plots",
                           {"task": task, "iters": 10}))["plots"]
    by_metric = {p["metric"]: p for p in plots}
    assert sorted(by_metric) == ["counts", "curve", "scores"]
    curve = orjson.loads(by_metric["curve"]["plot_str"])
    assert (by_metric["curve"]["variant"], by_metric["curve"]["iter"]) == ("fit", 3)
    assert curve["data"] == [{"type": "scatter", "x": [1, 2, 3], "y": [4, 5, 6]}]
    table = orjson.loads(by_metric["scores"]["plot_str"])["data"][0]
    assert table["type"] == "table" and table["header"]["values"] == ["name", "score"]
    assert table["cells"]["values"] == [["a", "b"], [1, 2]]
    bars = orjson.loads(by_metric["counts"]["plot_str"])["data"][0]
    assert (bars["type"], bars["x"], bars["y"]) == ("bar", ["x", "y", "z"], [3, 1, 4])
    sample = await clearml(stack, reader, "events.get_plot_sample",
                           {"task": task, "metric": "curve"})
    assert [e["plot_str"] for e in sample["events"]] == [by_metric["curve"]["plot_str"]]
    assert (sample["min_iteration"], sample["max_iteration"]) == (3, 3)

    # the docs' example, as written, with the variables the docs set
    shell, python = doc_example()
    for name in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY",
                 "CLEARML_WEB_HOST", "CLEARML_FILES_HOST"):
        assert f"{name}=" in shell
    rc, out = await run_sdk(stack, admin, tmp_path / "doc", python)
    assert rc == 0 and "ERROR" not in out and "Retrying" not in out, out
    found = (await clearml(stack, reader, "tasks.get_all", {"name": "^resnet-50$"}))["tasks"]
    assert [(t["status"], t["last_iteration"]) for t in found] == [("completed", 3)]
    doc_task = found[0]["id"]
    doc_data = await clearml(stack, reader, "events.get_scalar_metric_data",
                             {"task": doc_task, "metric": "loss"})
    assert [(e["variant"], e["iter"], e["value"]) for e in doc_data["events"]] == [
        ("train", 3, 0.42)]
    doc_log = await clearml(stack, reader, "events.get_task_log", {"task": doc_task})
    assert "epoch 3 done" in [line for e in doc_log["events"] for line in e["msg"].splitlines()]

    # run it again: the SDK reuses its development task (tasks.reset: events deleted, status
    # created), so the task holds the second run's reports only
    rc, out = await run_sdk(stack, admin, tmp_path / "doc", python)
    assert rc == 0 and "ERROR" not in out and "Retrying" not in out, out
    again = (await clearml(stack, reader, "tasks.get_all", {"name": "^resnet-50$"}))["tasks"]
    assert [(t["id"], t["status"]) for t in again] == [(doc_task, "completed")]
    doc_log = await clearml(stack, reader, "events.get_task_log", {"task": doc_task})
    assert [line for e in doc_log["events"] for line in e["msg"].splitlines()
            ].count("epoch 3 done") == 1

    # the debug image, by url
    image = await clearml(stack, reader, "events.get_debug_image_sample",
                          {"task": task, "metric": "samples", "variant": "first"})
    assert (image["event"]["iter"], image["event"]["url"]) == (
        4, "https://images.example.com/sample-4.png")
