/* Queues & nodes (Coopr), Custom metrics explorer and Pipeline health pages. */
'use strict';

(function otherPages(V) {
  const { el } = V;

  V.pages.jobs = async function jobs(root) {
    root.append(el('h1', {}, 'Queues and nodes'));
    const body = el('div');
    root.append(body);
    return async function refresh() {
      const sess = await V.api('/ui/api/session');
      const end = Math.floor(sess.now);
      const hours = Array.from({ length: 24 }, (_, i) => end - (24 - i) * 3600);
      let queues;
      let usage;
      try {
        [queues, ...usage] = await Promise.all([
          V.api('/v2/metrics/queues'),
          V.api(`/v2/metrics/nodes/usage?${V.qs({ start: end - 86400, end })}`),
          ...hours.map((h) => V.api(`/v2/metrics/nodes/usage?${V.qs({ start: h, end: h + 3600 })}`)),
        ]);
      } catch (err) {
        if (err.status === 403) {
          body.replaceChildren(V.emptyState('Queues and node usage need an admin key',
            'Coopr semantics: tasks queued and in progress, and node-seconds, are read with the admin role of the tenant (a superadmin sees every tenant). Sign in with such a key.'));
          return;
        }
        throw err;
      }
      const day = usage.shift();
      const rows = Object.entries(queues).map(([tenant, q]) => ({ tenant, ...q }));
      const anyJobs = rows.some((r) => r.total) || day.data[0].value;
      body.replaceChildren(
        el('div', { class: 'tiles' },
          V.tile('Queued', V.num(rows.reduce((a, r) => a + r.queued, 0)), 'tasks waiting', { 'data-stat': 'queued' }),
          V.tile('In progress', V.num(rows.reduce((a, r) => a + r.inProgress, 0)), 'tasks started', { 'data-stat': 'inProgress' }),
          V.tile('Node-hours, 24 h', V.num(day.data[0].value / 3600, 2), `${V.num(day.data[0].value)} node-seconds`, { 'data-stat': 'nodeSeconds' })),
        anyJobs ? '' : V.emptyState('No jobs yet', 'Publish job events (task queued/started/finished, node up/down) to the jobs topic to see queues and node usage:',
          '{"v": 1, "type": "job_task", "ts": <now>, "tenant": "<tenant>", "user": "alice", "task_id": "t1", "state": "queued", "cluster": "c1"}'),
        el('h2', {}, 'Queues per tenant'),
        V.table([
          { key: 'tenant', label: 'Tenant', render: (r) => r.tenant },
          { key: 'queued', label: 'Queued', num: true },
          { key: 'inProgress', label: 'In progress', num: true },
          { key: 'total', label: 'Total', num: true },
        ], rows, { id: 'queues-table', sortKey: 'total', desc: true }),
        el('h2', {}, 'Node usage'),
        el('div', { class: 'charts' }, V.chart({ title: 'Node-seconds per hour (last 24 h)', x: hours,
          series: [{ label: 'node-seconds', values: usage.map((u) => u.data[0].value), fill: 'rgba(47,111,237,0.15)' }] })));
    };
  };

  const RANGES = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400 };
  const AGGS = ['sum', 'count', 'rate', 'avg', 'min', 'max', 'last', 'p50', 'p95', 'p99'];

  V.pages.metrics = async function metrics(root, params) {
    const q = params.query;
    root.append(el('h1', {}, 'Custom metrics'));
    const list = await V.api(`/v2/metrics/custom/series?${V.qs({ limit: 10000 })}`);
    if (!list.series.length) {
      root.append(V.emptyState('No custom metrics yet',
        'Send DogStatsD to the UDP listener, or use the metrics client from the Python SDK:',
        'echo "train.samples:32|c|#model:bert,gpu:a100" | nc -u -w0 127.0.0.1 8125'));
      return null;
    }
    const names = Array.from(new Set(list.series.map((s) => s.name))).sort();
    const name = names.includes(q.get('name')) ? q.get('name') : names[0];
    const tagKeys = Array.from(new Set(list.series.filter((s) => s.name === name)
      .flatMap((s) => Object.keys(s.tags)))).sort();
    const agg = AGGS.includes(q.get('agg')) ? q.get('agg') : 'sum';
    const range = RANGES[q.get('range')] ? q.get('range') : '1h';
    const groupBy = tagKeys.includes(q.get('group_by')) ? q.get('group_by') : '';
    const tags = q.get('tags') || '';
    const go = (changes) => {
      const next = { name, agg, range, group_by: groupBy, tags, ...changes };
      location.hash = `#/metrics?${V.qs(next)}`;
    };
    const tagInput = el('input', { id: 'metric-tags', value: tags, placeholder: 'key:value, key:value' });
    root.append(el('div', { class: 'card row', id: 'metric-form' },
      el('label', {}, 'Metric ', el('select', { id: 'metric-name', onchange: (e) => go({ name: e.target.value, group_by: '', tags: '' }) },
        names.map((n) => el('option', { value: n, selected: n === name }, n)))),
      el('label', {}, 'Aggregation ', el('select', { id: 'metric-agg', onchange: (e) => go({ agg: e.target.value }) },
        AGGS.map((a) => el('option', { value: a, selected: a === agg }, a)))),
      el('label', {}, 'Group by ', el('select', { id: 'metric-group', onchange: (e) => go({ group_by: e.target.value }) },
        el('option', { value: '' }, '(none)'), tagKeys.map((k) => el('option', { value: k, selected: k === groupBy }, k)))),
      el('label', {}, 'Range ', el('select', { id: 'metric-range', onchange: (e) => go({ range: e.target.value }) },
        Object.keys(RANGES).map((r) => el('option', { value: r, selected: r === range }, `last ${r}`)))),
      el('label', {}, 'Tags ', tagInput),
      el('button', { onclick: () => go({ tags: tagInput.value.trim() }) }, 'Apply')));
    const body = el('div', { id: 'metric-body' });
    root.append(body);
    return async function refresh() {
      const sess = await V.api('/ui/api/session');
      const t2 = Math.floor(sess.now) + 1;
      const t1 = t2 - RANGES[range];
      const filters = tags.split(',').map((t) => t.trim()).filter(Boolean);
      const d = await V.api(`/v2/metrics/custom/timeseries?${V.qs({ name, aggregation: agg, group_by: groupBy, t1, t2, step: Math.max(1, Math.ceil(RANGES[range] / 180)), tag: filters })}`);
      const x = d.series.length ? d.series[0].points.map((p) => p[0]) : [];
      const label = (s) => (Object.keys(s.tags).length ? Object.entries(s.tags).map(([k, v]) => `${k}=${v}`).join(',') : name);
      const last = (s) => { for (let i = s.points.length - 1; i >= 0; i -= 1) if (s.points[i][1] !== null && s.points[i][1] !== 0) return s.points[i][1]; return null; };
      const total = (s) => s.points.reduce((a, p) => a + (p[1] || 0), 0);
      body.replaceChildren(
        el('div', {}, V.chart({ title: `${agg}(${name})${groupBy ? ` by ${groupBy}` : ''}`, x, height: 280,
          series: d.series.map((s) => ({ label: label(s), values: s.points.map((p) => p[1]) })) })),
        el('h2', {}, 'Series'),
        V.table([
          { key: 'label', label: groupBy || 'series', render: (r) => r.label },
          { key: 'last', label: `last non-zero ${agg}`, num: true, render: (r) => V.num(r.last, 4) },
          { key: 'total', label: 'sum over range', num: true, render: (r) => V.num(r.total, 4) },
        ], d.series.map((s) => ({ label: groupBy ? s.tags[groupBy] : name, last: last(s), total: total(s) })), { id: 'metric-table', sortKey: 'total', desc: true }));
    };
  };

  /** Prometheus text → [{name, labels, value}] (the subset Vitals writes). */
  V.parseProm = function parseProm(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/);
      if (!m) continue;
      const labels = {};
      if (m[3]) for (const lm of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
      out.push({ name: m[1], labels, value: Number(m[4]) });
    }
    return out;
  };

  // Some series label the topic by name (<prefix><kind>), some by kind: rows are keyed by kind.
  const KINDS = ['task-events', 'heartbeats', 'requests', 'metrics', 'jobs'];
  const topicKind = (t) => KINDS.find((x) => t === x || t.endsWith(x)) || t;
  /** Sum of a metric's samples per topic kind ({kind: value}); `seen(topic)` sees each label. */
  function sumOf(prom, name, seen) {
    const m = {};
    prom.filter((p) => p.name === name).forEach((p) => {
      const topic = p.labels.topic || '';
      if (seen) seen(topic);
      const k = topicKind(topic);
      m[k] = (m[k] || 0) + p.value;
    });
    return m;
  }

  V.pages.pipeline = async function pipeline(root) {
    root.append(el('h1', {}, 'Pipeline health'));
    const body = el('div');
    root.append(body);
    const history = [];  // [{t, consumed: {topic: n}}] for events/s between refreshes
    return async function refresh() {
      let ready;
      try { ready = await V.api('/readyz'); } catch (err) { if (err.body && err.body.checks) ready = err.body; else throw err; }
      if (!history.length) {  // a first sample a second earlier, so events/s shows at once
        history.push({ t: Date.now() / 1000, consumed: sumOf(V.parseProm(await V.api('/metrics', { text: true })), 'vitals_events_consumed_total') });
        await new Promise((r) => setTimeout(r, 1000));
      }
      const prom = V.parseProm(await V.api('/metrics', { text: true }));
      let dead = null;
      if (V.session.role === 'superadmin') dead = await V.api('/ui/api/dead-letters');
      const names = {};  // kind → topic name, as seen in the series
      const kindOf = (t) => {
        const k = topicKind(t);
        if (k !== t) names[k] = t;
        return k;
      };
      const sumBy = (name) => sumOf(prom, name, (t) => { kindOf(t); });
      const lag = sumBy('vitals_consumer_lag');
      const consumed = sumBy('vitals_events_consumed_total');
      const rejected = sumBy('vitals_events_rejected_total');
      const dlq = sumBy('vitals_dlq_messages_total');
      const insSum = sumBy('vitals_insert_seconds_sum');
      const insCount = sumBy('vitals_insert_seconds_count');
      const now = Date.now() / 1000;
      history.push({ t: now, consumed });
      while (history.length > 60) history.shift();
      const prev = history.length > 1 ? history[history.length - 2] : null;
      const topics = Array.from(new Set([...Object.keys(lag), ...Object.keys(consumed), ...Object.keys(insCount)]))
        .filter(Boolean).sort();
      const rate = (t) => (prev ? ((consumed[t] || 0) - (prev.consumed[t] || 0)) / (now - prev.t) : null);
      const checks = Object.entries(ready.checks || {}).map(([name, c]) => ({ name, ...c }));
      const good = (s) => ['ok', 'consuming'].includes(s);
      body.replaceChildren(
        el('div', { class: 'tiles' },
          V.tile('Ready', ready.status === 'ready' ? 'yes' : 'no', ready.status === 'ready' ? 'every check passes' : (ready.message || ready.status), { 'data-stat': 'ready' }),
          V.tile('Consumer lag', V.num(Object.values(lag).reduce((a, b) => a + b, 0)), 'messages behind, all topics', { 'data-stat': 'lag' }),
          V.tile('Events stored', V.num(Object.values(consumed).reduce((a, b) => a + b, 0)), 'since this process started', { 'data-stat': 'consumed' }),
          V.tile('Dead letters', V.num(Object.values(dlq).reduce((a, b) => a + b, 0)), 'since this process started', { 'data-stat': 'dlq' })),
        el('h2', {}, 'Readiness checks'),
        V.table([
          { key: 'name', label: 'Check', render: (c) => c.name },
          { key: 'state', label: 'State', render: (c) => el('span', { class: `pill ${good(c.state) ? 'ok' : 'bad'}` }, c.state) },
          { key: 'reason', label: 'Reason', render: (c) => c.reason || '' },
          { key: 'lag', label: 'Lag', num: true },
        ], checks, { id: 'checks-table', sortKey: 'name' }),
        el('h2', {}, 'Topics'),
        topics.length ? V.table([
          { key: 'topic', label: 'Topic', render: (r) => names[r.topic] || r.topic },
          { key: 'lag', label: 'Consumer lag', num: true },
          { key: 'rate', label: 'Events/s (between refreshes)', num: true, render: (r) => (r.rate === null ? '…' : V.num(r.rate, 1)) },
          { key: 'consumed', label: 'Events stored', num: true },
          { key: 'rejected', label: 'Rejected (DLQ)', num: true },
          { key: 'insert', label: 'Avg insert', num: true, render: (r) => (r.insert === null ? '—' : V.ms(r.insert * 1000)) },
          { key: 'inserts', label: 'Inserts', num: true },
        ], topics.map((t) => ({ topic: t, lag: lag[t] || 0, rate: rate(t), consumed: consumed[t] || 0, rejected: rejected[t] || 0,
          insert: insCount[t] ? insSum[t] / insCount[t] : null, inserts: insCount[t] || 0 })), { id: 'topics-table', sortKey: 'topic' })
          : V.emptyState('No topic activity in this process', 'The worker reports per-topic counters once events flow (vitals up runs worker and API in one process).'),
        el('h2', {}, 'Dead letters'),
        dead === null
          ? el('p', { class: 'muted', id: 'dead-letters-note' }, 'Dead-letter reasons span every tenant: sign in with a superadmin key to read them. Counts per topic are in the table above.')
          : (dead.topics.length ? V.table([
            { key: 'topic', label: 'Topic', render: (r) => r.topic },
            { key: 'count', label: 'Dead letters', num: true },
            { key: 'latestAt', label: 'Latest', num: true, render: (r) => V.ago(r.latestAt) },
            { key: 'reasons', label: 'Latest reasons', render: (r) => el('div', {}, r.latest.map((l) => el('div', { 'data-reason': '' }, l.reason))) },
          ], dead.topics.map((d) => ({ ...d, reasons: d.latest.length })), { id: 'dead-letters-table', sortKey: 'count', desc: true })
            : el('p', { class: 'muted', id: 'dead-letters-note' }, 'No dead letters: every message was valid.')),
      );
    };
  };
}(window.Vitals));
