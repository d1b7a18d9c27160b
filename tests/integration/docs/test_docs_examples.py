"""Every `run` example of README.md and docs/*.md, executed against one live `vitals up --demo`
(a subprocess in its own directory, as a newcomer runs it), with its output checked where the
doc shows one (tests/doc_examples.py says how blocks are marked). Also `vitals status` against
that stack, and without one.

The stack listens on free ports, not the defaults a newcomer gets (8000, 9092, 8125), so that
suites can run side by side: the examples' default addresses are rewritten to the stack's
before they run. Shell blocks run through `bash -eo pipefail` with `vitals` on PATH, `$KEY`
(the admin key, as the README's first example sets it) and `$API`, and curl set to fail on an
HTTP error (so a 404 fails the example); Python blocks through this interpreter; SQL blocks
statement by statement through `POST /sql`, the route `vitals sql` uses. The environment is
built from scratch: nothing of the test process (topic prefixes, brokers of other tests) leaks
into an example.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipeline.local.kafka import LocalKafka, free_port
from tests.doc_examples import DOCS, REPO, Block, blocks, matches
from tests.integration.kafka_fixture import JAR_CACHE

BIN = Path(sys.executable).parent
RUN = [b for b in blocks() if b.mark == "run"]


@dataclass
class Live:
    work: Path
    env: dict[str, str]
    url: str
    key: str
    bootstrap: str
    statsd_port: int
    log: Path

    def rewrite(self, text: str) -> str:
        api = self.url.removeprefix("http://")
        text = re.sub(r"\b(?:127\.0\.0\.1|localhost):8000\b", api, text)
        text = re.sub(r"\b(?:127\.0\.0\.1|localhost):9092\b", self.bootstrap, text)
        return re.sub(r"\b8125\b", str(self.statsd_port), text)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("HOME", "JAVA_HOME", "M2_HOME", "MAVEN_OPTS", "TMPDIR")
            if k in os.environ}
    return {**keep, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LANG": "C.UTF-8", "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    work = tmp_path_factory.mktemp("docs-examples")
    kafka_port, statsd_port = free_port(), _free_udp_port()
    (work / "curl").mkdir()
    (work / "curl" / ".curlrc").write_text("--fail-with-body\n--show-error\n")
    env = _env({"VITALS_API_PORT": str(free_port()), "VITALS_KAFKA_PORT": str(kafka_port),
                "VITALS_STATSD_PORT": str(statsd_port)})
    log = work / "vitals-up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BIN / "vitals"), "up", "--demo"], cwd=work, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Live(work, env, "", "", f"127.0.0.1:{kafka_port}", statsd_port, log)
    try:
        deadline = time.monotonic() + 150
        while "running; press Ctrl-C" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, stack.tail()
            time.sleep(0.2)
        stack.url = (work / ".data" / "api.url").read_text().strip()
        stack.key = (work / ".data" / "admin.key").read_text().strip()
        auth = {"Authorization": f"Bearer {stack.key}"}
        # the demo's three endpoints have stored requests and heartbeats
        while True:
            docs = [httpx.post(f"{stack.url}/get_endpoint_stats/", json={"id": i}, headers=auth,
                               timeout=10) for i in (1, 2, 3)]
            if all(d.status_code == 200 and d.json()["totreqs"] > 0 and d.json()["nworkers"] > 0
                   for d in docs):
                break
            assert time.monotonic() < deadline, ([d.text for d in docs], stack.tail())
            time.sleep(0.5)
        stack.env = {**env, "KEY": stack.key, "API": stack.url,
                     "CURL_HOME": str(work / "curl")}
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        LocalKafka(work / ".data" / "kafka", cache_dir=JAR_CACHE).kill_now()


def _run(live: Live, block: Block) -> tuple[int, str]:
    code = live.rewrite(block.code)
    if block.lang == "sql":
        out = []
        for statement in [s.strip() for s in code.split(";") if s.strip()]:
            r = httpx.post(f"{live.url}/sql", json={"query": statement, "format": "TSV"},
                           headers={"Authorization": f"Bearer {live.key}"}, timeout=60)
            if r.status_code != 200:
                return r.status_code, f"{statement}\n-> {r.text}"
            out.append(r.text)
        return 0, "".join(out)
    if block.lang in ("python", "py"):
        script = live.work / "example.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-eo", "pipefail", "-c", code]
    done = subprocess.run(cmd, cwd=live.work, env=live.env, capture_output=True, text=True,
                          timeout=90, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("doc", [d for d in DOCS if any(b.path == d for b in RUN)],
                         ids=lambda d: d.name)
def test_doc_examples_run(live: Live, doc: Path) -> None:
    for block in [b for b in RUN if b.path == doc]:
        code, out = _run(live, block)
        shown = f"{block.where} ({block.lang}):\n{live.rewrite(block.code)}\n--- printed ---\n{out}"
        assert code == 0, f"exit {code}: {shown}\n--- vitals up ---\n{live.tail()}"
        if block.expected is not None:
            expected = live.rewrite(block.expected)
            assert matches(expected, out), f"expected:\n{expected}\n{shown}"


def test_vitals_status_shows_the_live_stack(live: Live) -> None:
    deadline = time.monotonic() + 30
    while True:  # the consumers' lag is a number once they know the log end
        done = subprocess.run([str(BIN / "vitals"), "status"], cwd=live.work, env=live.env,
                              capture_output=True, text=True, timeout=30, check=False)
        lags = re.findall(r"^    (\S+) +consuming +(\d+|-)$", done.stdout, re.M)
        if all(lag != "-" for _, lag in lags) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    data = live.work / ".data"
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == [
        f"Vitals on {data}: ready",
        f"  API:       {live.url}  (OpenAPI: {live.url}/docs)",
        f"  dashboard: {live.url}/ui",
        f"  admin key: {data / 'admin.key'}",
        f"  Kafka:     {live.bootstrap}  (local broker, pid "
        f"{(data / 'kafka' / 'kafka.pid').read_text().strip()}; log "
        f"{data / 'kafka' / 'server.log'})",
    ]
    assert lines[5:9] == ["  storage:   ok", "  broker:    ok", "  consumers:",
                          "    topic        state      lag"]
    assert [t for t, _ in lags] == ["heartbeats", "jobs", "metrics", "requests", "task-events"]
    assert all(lag.isdigit() for _, lag in lags), done.stdout


def test_vitals_status_without_a_running_stack(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "vitals"), "status"], cwd=tmp_path, env=_env({}),
                          capture_output=True, text=True, timeout=30, check=False)
    data = tmp_path / ".data"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"vitals: no `vitals up` runs on {data} ({data / 'api.url'} is "
                           "missing); start one with `vitals up` (or set VITALS_DATA_DIR to its "
                           "data dir)\n")
    (data).mkdir()
    (data / "api.url").write_text(f"http://127.0.0.1:{free_port()}\n")  # left by a kill -9
    done = subprocess.run([str(BIN / "vitals"), "status"], cwd=tmp_path, env=_env({}),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and "is left over from a run that did not stop cleanly" in \
        done.stderr, done.stderr
