"""DogStatsD parsing and aggregation, the fire-and-forget client, the metrics builder/gate."""

from __future__ import annotations

import math
import socket

import pytest

from pipeline.ingest.rows.metrics import SeriesGate, build, series_key
from pipeline.ingest.rows.requests import SinkBatch
from pipeline.sdk.metrics_client import MetricsClient, format_line
from pipeline.statsd.parse import Aggregator, MalformedLine, parse_line, split_lines
from pipeline.storage import sketch


def test_parse_full_line():
    s = parse_line(b"api.latency:12.5|ms|@0.5|#route:/v1,model:a|T1700000000|c:abc")
    assert (s.name, s.kind, s.values, s.rate) == ("api.latency", "ms", (12.5,), 0.5)
    assert s.tags == (("model", "a"), ("route", "/v1"))
    assert s.ts == 1700000000.0


def test_tags_sorted_bare_and_duplicate():
    assert parse_line(b"x:1|c|#b:2,a,b:3").tags == (("a", ""), ("b", "3"))
    assert parse_line(b"x:1|c|#b:2,a:1").tags == parse_line(b"x:1|c|#a:1,b:2").tags


def test_packed_values_for_histograms_only():
    assert parse_line(b"h:1:2:3|h").values == (1.0, 2.0, 3.0)
    with pytest.raises(MalformedLine, match="several values"):
        parse_line(b"c:1:2|c")


@pytest.mark.parametrize("line, reason", [
    (b"novalue|c", "missing ':<value>'"),
    (b"x:1", "missing '|<type>'"),
    (b"x:abc|c", "is not a number"),
    (b"x:1|s", "type 's'"),
    (b"x:1|c|@2", "sample rate 2.0 outside"),
    (b"x:1|c|@0", "outside"),
    (b"x:nan|g", "not finite"),
    (b"bad name:1|c", "metric name"),
    (b"x:1|c|zzz", "unknown field"),
    (b"x:1|c|#:v", "empty key"),
    (b"_e{5,4}:title|text", "events and service checks"),
    (b"\xff\xfe:1|c", "not UTF-8"),
])
def test_malformed_lines_have_reasons(line, reason):
    with pytest.raises(MalformedLine, match=None) as exc:
        parse_line(line)
    assert reason in str(exc.value)


def test_split_lines():
    assert split_lines(b"a:1|c\nb:2|g\r\n\n") == [b"a:1|c", b"b:2|g"]


def test_aggregator_exact_per_series_second():
    agg = Aggregator()
    for line, t in [(b"c:1|c|#a:1", 100.2), (b"c:2|c|@0.5|#a:1", 100.9), (b"c:5|c|#a:1", 101.0),
                    (b"g:3|g", 100.1), (b"g:7|g", 100.8), (b"g:5|g", 100.5),
                    (b"h:10:20|h", 100.0), (b"h:30|h|@0.5", 100.3)]:
        assert agg.add(parse_line(line), t)
    events = {(e["name"], int(e["ts"])): e for e in agg.drain("acme")}
    assert len(agg) == 0
    c100 = events[("c", 100)]
    assert (c100["count"], c100["sum"], c100["tags"], c100["tenant"]) == (2, 5.0, {"a": "1"},
                                                                          "acme")
    assert events[("c", 101)]["sum"] == 5.0
    g = events[("g", 100)]
    assert (g["last"], g["min"], g["max"], g["count"]) == (7.0, 3.0, 7.0, 3)
    h = events[("h", 100)]
    assert (h["count"], h["sum"], h["min"], h["max"]) == (4, 90.0, 10.0, 30.0)
    assert h["hist"] == {str(sketch.bucket_of(10)): 1, str(sketch.bucket_of(20)): 1,
                         str(sketch.bucket_of(30)): 2}
    assert "hist" not in g


def test_aggregator_bounded_and_counts_drops():
    agg = Aggregator(max_entries=2)
    assert agg.add(parse_line(b"a:1|c"), 1.0)
    assert agg.add(parse_line(b"b:1|c"), 1.0)
    assert agg.add(parse_line(b"a:1|c"), 1.5)        # existing series-second: still fine
    assert not agg.add(parse_line(b"c:1:2|h"), 1.0)  # new: dropped, both samples counted
    assert agg.dropped == 2 and len(agg) == 2


def test_format_line_and_escaping():
    assert format_line("m", 1, "c", {"model": "v1"}) == b"m:1|c|#model:v1"
    assert format_line("a|b:c", 2.5, "h", {"k:x": "a,b"}, 0.5) == b"a_b_c:2.5|h|@0.5|#k_x:a_b"


def test_client_never_raises():
    # no listener on this port (a bound socket we never read from is closed at once)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    c = MetricsClient("127.0.0.1", port)
    for _ in range(50):
        c.increment(metric="x", value=1, tags={"a": "b"})
        c.gauge(metric="g", value=math.nan)           # bad value: dropped, no exception
        c.histogram(metric="h", value="oops")  # type: ignore[arg-type]
    assert c.sent + c.dropped == 150
    bad = MetricsClient("no-such-host.invalid", 8125)
    bad.increment(metric="x")
    bad.close()
    bad.increment(metric="x")
    assert bad.sent == 0 and bad.dropped == 2
    c.close()


def test_client_full_socket_buffer_does_not_block():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind(("127.0.0.1", 0))
    c = MetricsClient("127.0.0.1", rx.getsockname()[1])
    c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # type: ignore[union-attr]
    for _ in range(20_000):
        c.histogram(metric="flood", value=1.5, tags={"pad": "x" * 200})
    assert c.sent + c.dropped == 20_000
    rx.close()
    c.close()


def _ev(**kw):
    e = {"v": 1, "type": "metric", "ts": 1_700_000_000_500, "tenant": "t", "name": "m",
         "kind": "c", "tags": {}, "rate": 1}
    e.update(kw)
    return e


def test_gate_checks_content_and_series_limit():
    gate = SeriesGate(max_series=2)
    gate.ready = True
    events = list(enumerate([
        _ev(value=1, tags={"a": "1"}), _ev(value=1, tags={"a": "2"}),
        _ev(value=1, tags={"a": "3"}),                 # third series: over the limit
        _ev(value=1, tags={"a": "1"}),                 # known series: fine
        _ev(value=1, tags={"a": 5}),                   # non-string tag
        _ev(value=1, count=1),                         # mixed forms
        _ev(count=1, sum=1),                           # aggregate without min
        _ev(name="bad name", value=1),
        _ev(value=1, tags={"a": "3"}, tenant="other"),  # other tenant has its own budget
    ]))
    ok, bad = gate.admit(events)
    assert [i for i, _ in ok] == [0, 1, 3, 8]
    reasons = {i: r for i, r, _ in bad}
    assert reasons[2].startswith("series limit: tenant 't' has 2 series")
    assert reasons[4] == "tags.a: expected string"
    assert reasons[5].startswith("count: not allowed with value")
    assert reasons[6] == "min: required without value"
    assert reasons[7].startswith("name: ")


def test_build_one_row_per_series_second_and_message():
    batch = SinkBatch()
    h = {str(sketch.bucket_of(10.0)): 3}
    events = list(enumerate([
        _ev(value=2, rate=0.5, tags={"b": "2", "a": "1"}),
        _ev(value=3, tags={"a": "1", "b": "2"}, ts=1_700_000_000_900),
        _ev(kind="g", value=4, ts=1_700_000_000_100), _ev(kind="g", value=9, ts=1_700_000_000_050),
        _ev(kind="h", count=3, sum=30.0, min=10.0, max=10.0, last=10.0, hist=h),
        _ev(kind="h", value=10.0, rate=0.25),
    ]))
    build(batch, 2, 77, events)
    rows = {(r[1], r[4]): r for r in batch.rows["metrics_1s"]}
    c = rows[("m", "c")]
    assert c[2] == series_key({"a": "1", "b": "2"}) == '{"a":"1","b":"2"}'
    assert (c[5], c[6], c[7], c[13], c[14]) == (1_700_000_000, 2.0, 7.0, 2, 77)
    g = rows[("m", "g")]
    assert (g[8], g[9], g[10], g[11]) == (4.0, 9.0, 4.0, 1_700_000_000_100)
    hh = rows[("m", "h")]
    assert (hh[6], hh[7], hh[12]) == (7.0, 70.0, {sketch.bucket_of(10.0): 7})
    assert len(batch.rows["metric_series"]) == 3 and batch.events == 6


def test_feed_cache_matches_full_parse():
    lines = [b"a:1|c|#x:1,y:2", b"a:2|c|#y:2,x:1", b"a:3|c|@0.5|#x:1,y:2", b"h:1:2|h",
             b"h:4|h", b"t:5|c|T1700000000", b"g:1|g", b"g:9|g", b"a:4|c|#x:1,y:2"] * 3
    fed, added = Aggregator(), Aggregator()
    for ln in lines:
        fed.feed(ln, 100.5)
        added.add(parse_line(ln), 100.5)
    key = lambda e: (e["name"], e["kind"], tuple(sorted(e["tags"].items())), int(e["ts"]))  # noqa: E731
    assert sorted(fed.drain("t"), key=key) == sorted(added.drain("t"), key=key)
    with pytest.raises(MalformedLine, match="not a number"):
        fed.feed(b"a:x|c|#x:1,y:2", 1.0)   # cached head, bad value: full parse gives the reason
    with pytest.raises(MalformedLine, match="not finite"):
        fed.feed(b"a:inf|c|#x:1,y:2", 1.0)


def test_an_unstorable_sample_is_malformed_and_spares_its_series_second():
    """A value past the metric schema's bound (whose histogram bucket would not fit the Int16 key)
    is refused alone, on both parse paths; the valid samples of the same series-second remain."""
    agg = Aggregator()
    for line in (b"h:10|h", b"h:1e290|h", b"h:20|h"):
        try:
            agg.feed(line, 100.0)
        except MalformedLine as exc:
            assert "outside" in str(exc) and line == b"h:1e290|h"
    with pytest.raises(MalformedLine, match="outside"):
        parse_line(b"h:-1e290|h")
    (h,) = agg.drain("acme")
    assert (h["count"], h["sum"], h["max"]) == (2, 30.0, 20.0)
    assert max(int(k) for k in h["hist"]) <= sketch.MAX_BUCKET


def test_schema_bounds_keep_histogram_buckets_in_int16():
    import schemas

    bound = schemas.load("metric")["properties"]["value"]["maximum"]
    assert sketch.bucket_of(bound) <= sketch.MAX_BUCKET
    assert sketch.bucket_of(sketch.MAX_VALUE) <= sketch.MAX_BUCKET < sketch.bucket_of(1e290)
