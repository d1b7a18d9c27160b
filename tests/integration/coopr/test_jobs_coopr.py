"""Job queues and node usage (Coopr style) from a scripted lifecycle on the `jobs` topic: every
figure equals the ground truth computed here, with the reference's auth and role rules."""

from __future__ import annotations

import random
import time

from pipeline.sdk.producer import Producer

T0 = int(time.time()) // 60 * 60 - 3600


def task(tenant, user, task_id, state, ts):
    return {"v": 1, "type": "task", "ts": ts, "tenant": tenant, "user": user,
            "task_id": task_id, "state": state, "cluster": "c"}


def node(tenant, user, cluster, node_id, state, ts):
    return {"v": 1, "type": "node", "ts": ts, "tenant": tenant, "user": user,
            "cluster": cluster, "node_id": node_id, "state": state}


def lifecycle() -> list[dict]:
    ev = []
    # tenant1: 3 tasks still queued, 4 in progress, 5 done (2 of them failed), 1 requeued
    for i in range(13):
        tid = f"t1-{i}"
        ev.append(task("tenant1", "alice", tid, "queued", T0 + i))
        if i >= 3:
            ev.append(task("tenant1", "alice", tid, "started", T0 + 20 + i))
        if i >= 7 and i < 12:
            ev.append(task("tenant1", "alice", tid, "failed" if i % 2 else "finished",
                           T0 + 40 + i))
        if i == 12:
            ev.append(task("tenant1", "alice", tid, "queued", T0 + 60))  # requeued
    # tenant2: one task in progress, one finished; same task id as tenant1's must not mix
    ev += [task("tenant2", "bob", "t1-0", "queued", T0), task("tenant2", "bob", "t1-0",
                                                                "started", T0 + 5),
           task("tenant2", "bob", "x", "queued", T0 + 1), task("tenant2", "bob", "x",
                                                               "finished", T0 + 30)]
    # nodes: a 3-node cluster (tenant1) and a 1-node cluster (tenant2), up from T0 on
    for n in range(3):
        ev.append(node("tenant1", "alice", "c3", f"n{n}", "up", T0))
    ev.append(node("tenant2", "bob", "c1", "n0", "up", T0))
    # a node that lived 60 s, one that flapped
    ev += [node("tenant1", "alice", "short", "n0", "up", T0 + 10),
           node("tenant1", "alice", "short", "n0", "down", T0 + 70),
           node("tenant1", "alice", "flap", "n0", "up", T0 + 100),
           node("tenant1", "alice", "flap", "n0", "up", T0 + 110),   # repeated up: no double
           node("tenant1", "alice", "flap", "n0", "down", T0 + 130),
           node("tenant1", "alice", "flap", "n0", "down", T0 + 140)]
    # george in two tenants: 100 s in mytenant, 30 s in superadmin
    ev += [node("mytenant", "george", "g", "n0", "up", T0),
           node("mytenant", "george", "g", "n0", "down", T0 + 100),
           node("superadmin", "george", "g", "n0", "up", T0 + 50),
           node("superadmin", "george", "g", "n0", "down", T0 + 80)]
    return ev


def node_seconds(events, start, end, *, tenant=None, user=None) -> int:
    nodes: dict[tuple, list] = {}
    for e in events:
        if e["type"] != "node" or (tenant and e["tenant"] != tenant):
            continue
        nodes.setdefault((e["tenant"], e["cluster"], e["node_id"]), []).append(e)
    total = 0
    for evs in nodes.values():
        evs.sort(key=lambda e: e["ts"])
        for i, e in enumerate(evs):  # the next event ends an interval, whoever sent it
            if e["state"] != "up" or (user and e["user"] != user):
                continue
            stop = evs[i + 1]["ts"] if i + 1 < len(evs) else end
            total += max(0, min(stop, end) - max(e["ts"], start))
    return total


async def ingest_jobs(stack, events: list[dict]) -> None:
    """Publish job events and wait until every one is stored."""
    s = stack.settings
    async with Producer(s.kafka_bootstrap, s.topics) as p:
        await p.send_many("jobs", events)
    await stack.wait_for(lambda: stack.rows(
        "SELECT (SELECT count() FROM {db}.job_tasks FINAL) + "
        "(SELECT count() FROM {db}.job_nodes FINAL)"), [(len(events),)])


def coopr(key: str, tenant: str, user: str = "admin") -> dict:
    return {"Coopr-UserID": user, "Coopr-ApiKey": key, "Coopr-TenantID": tenant}


async def test_queues_and_node_usage_match_the_script(stack_factory):
    stack = await stack_factory()
    events = lifecycle()
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)  # arrival order must not matter: event time decides
    await ingest_jobs(stack, shuffled)
    sa = await stack.key("superadmin", "superadmin")
    t1_admin = await stack.key("tenant1", "admin")
    my_admin = await stack.key("mytenant", "admin")
    t1_reader = await stack.key("tenant1", "reader")
    get = stack.http.get

    r = await get("/v2/metrics/queues", headers=coopr(sa, "superadmin"))
    assert r.status_code == 200
    assert r.json() == {
        "superadmin": {"inProgress": 0, "queued": 0, "total": 0},
        "tenant1": {"inProgress": 4, "queued": 4, "total": 8},
        "tenant2": {"inProgress": 1, "queued": 0, "total": 1},
    }
    r = await get("/v2/metrics/queues", headers=coopr(t1_admin, "tenant1"))
    assert r.json() == {"tenant1": {"inProgress": 4, "queued": 4, "total": 8}}
    r = await get("/v2/metrics/queues", headers={"Authorization": f"Bearer {my_admin}"})
    assert r.json() == {"mytenant": {"inProgress": 0, "queued": 0, "total": 0}}

    # node usage: the reference's example, 4 nodes × 60 s add 240 node-seconds
    usage = "/v2/metrics/nodes/usage"
    start = T0 + 600
    a = (await get(f"{usage}?start={T0}&end={start}", headers=coopr(sa, "superadmin"))).json()
    b = (await get(f"{usage}?start={T0}&end={start + 60}",
                   headers=coopr(sa, "superadmin"))).json()
    assert a == {"start": T0, "end": start,
                 "data": [{"time": T0, "value": node_seconds(events, T0, start)}]}
    assert b["data"][0]["value"] - a["data"][0]["value"] == 240
    assert a["data"][0]["value"] == 4 * 600 + 60 + 30 + 100 + 30
    # defaults: start = first task completion, end = now
    now_before = int(time.time())
    r = (await get(usage, headers=coopr(sa, "superadmin"))).json()
    first_done = min(e["ts"] for e in events if e["type"] == "task"
                     and e["state"] in ("finished", "failed"))
    assert r["start"] == first_done and now_before <= r["end"] <= int(time.time())
    assert r["data"][0]["value"] == node_seconds(events, first_done, r["end"])
    # start only, end only
    r = (await get(f"{usage}?start={T0 + 65}&end={T0 + 120}",
                   headers=coopr(sa, "superadmin"))).json()
    assert r["data"][0]["value"] == node_seconds(events, T0 + 65, T0 + 120)
    assert r["data"][0]["value"] == 4 * 55 + 5 + 20 + 35 + 15
    # a tenant admin sees its own nodes only; george never mixes across tenants
    r = (await get(f"{usage}?start={T0}&end={start}", headers=coopr(t1_admin, "tenant1"))).json()
    assert r["data"][0]["value"] == node_seconds(events, T0, start, tenant="tenant1")
    r = (await get(f"{usage}?user=george&start={T0}&end={start}",
                   headers=coopr(my_admin, "mytenant", "admin"))).json()
    assert r["data"][0]["value"] == 100
    r = (await get(f"{usage}?user=george&start={T0}&end={start}",
                   headers=coopr(sa, "superadmin"))).json()
    assert r["data"][0]["value"] == 130
    r = (await get(f"{usage}?tenant=superadmin&start={T0}&end={start}",
                   headers=coopr(sa, "superadmin"))).json()
    assert r["data"][0]["value"] == 30

    # the reference's errors
    r = await get(f"{usage}?tenant=tenant1", headers=coopr(t1_admin, "tenant1"))
    assert r.status_code == 405 and r.json()["error"] == "METHOD_NOT_ALLOWED"
    r = await get(usage, headers={"Coopr-ApiKey": t1_admin, "Coopr-TenantID": "tenant1"})
    assert r.status_code == 401 and r.json()["details"]["missingHeaders"] == ["Coopr-UserID"]
    r = await get(usage, headers=coopr(t1_admin, "tenant2"))
    assert r.status_code == 403
    r = await get("/v2/metrics/queues", headers=coopr(t1_reader, "tenant1"))
    assert r.status_code == 403 and r.json()["details"]["requiredPermission"] == "admin"
    r = await get("/v2/metrics/queues")
    assert r.status_code == 401
    r = await get(f"{usage}?start=abc", headers=coopr(sa, "superadmin"))
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "start"
    r = await get(f"{usage}?start=200&end=100", headers=coopr(sa, "superadmin"))
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "end"


async def test_user_usage_ends_at_the_nodes_next_event_and_superadmin_tenant_header(
        stack_factory):
    """A node alice brought up and bob took down counts for alice only until bob's event (not
    to the end of the range); a superadmin key of any tenant sends the reference's
    `Coopr-TenantID: superadmin`."""
    stack = await stack_factory()
    events = [node("hand", "alice", "h", "n0", "up", T0),
              node("hand", "bob", "h", "n0", "down", T0 + 100),
              node("hand", "bob", "h", "n0", "up", T0 + 200),
              node("hand", "carol", "h", "n1", "up", T0 + 300),
              node("hand", "alice", "h", "n1", "up", T0 + 350),  # a repeated up, another user
              task("hand", "alice", "x", "queued", T0)]
    await ingest_jobs(stack, events)
    admin = await stack.key("hand", "admin")
    usage = f"/v2/metrics/nodes/usage?start={T0}&end={T0 + 600}"

    async def value(user: str | None, key: str = admin, tenant: str = "hand") -> int:
        r = await stack.http.get(usage + (f"&user={user}" if user else ""),
                                 headers=coopr(key, tenant))
        assert r.status_code == 200, r.text
        return r.json()["data"][0]["value"]

    expected = {u: node_seconds(events, T0, T0 + 600, user=u)
                for u in (None, "alice", "bob", "carol")}
    assert expected == {None: 100 + 400 + 300, "alice": 100 + 250, "bob": 400, "carol": 50}
    for user, want in expected.items():
        assert await value(user) == want, user
    assert sum(v for u, v in expected.items() if u) == expected[None]

    # the reference's examples send Coopr-TenantID: superadmin; any superadmin key may
    ops = await stack.key("ops", "superadmin")
    assert await value("alice", ops, "superadmin") == 350
    r = await stack.http.get("/v2/metrics/queues", headers=coopr(ops, "superadmin"))
    assert r.status_code == 200, r.text
    assert r.json()["hand"] == {"inProgress": 0, "queued": 1, "total": 1}
    ops_admin = await stack.key("ops", "admin")  # not for an admin: its tenant is "ops"
    r = await stack.http.get("/v2/metrics/queues", headers=coopr(ops_admin, "superadmin"))
    assert r.status_code == 403 and r.json()["details"]["parameter"] == "Coopr-TenantID"
