/* Endpoints (overview table) and Endpoint (charts, workers) pages. */
'use strict';

(function endpointPages(V) {
  const { el } = V;

  const sendRequests = (tenant) => [
    `echo '{"v": 1, "type": "request", "ts": '$(date +%s)', "tenant": "${tenant}", "endpoint_id": 1, "endpoint": "my-llm", "status": 200, "latency_ms": 120}' \\`,
    '  | vitals publish --topic requests',
    '# workers report on the heartbeats topic (the vast-ai pyworker status fields),',
    '# a vast.ai worker through POST /vast/<endpoint>/worker_status/;',
    '# `vitals demo` sends synthetic traffic to the "default" tenant',
  ].join('\n');

  V.pages.endpoints = async function endpoints(root) {
    root.append(el('div', { class: 'row' }, el('h1', {}, 'Endpoints'), el('span', { class: 'spacer' }),
      el('span', { class: 'muted' }, 'current stats over the last stats window · p95 and trend over the last hour')));
    const body = el('div');
    root.append(body);
    let table = null;
    return async function refresh() {
      const data = await V.api('/ui/api/endpoints');
      if (!data.endpoints.length) {
        body.replaceChildren(V.emptyState('No endpoints yet',
          'Endpoints appear when request events or heartbeats reach Vitals. Send one:', sendRequests(V.session.tenant)));
        return;
      }
      const all = V.session.role === 'superadmin';
      const cols = [
        { key: 'name', label: 'Endpoint', render: (r) => el('a', { href: `#/endpoints/${r.id}`, 'data-endpoint': r.id }, r.name || `#${r.id}`) },
        { key: 'id', label: 'Id', num: true },
        all ? { key: 'tenant', label: 'Tenant', render: (r) => r.tenant } : null,
        { key: 'reqrate', label: 'Req/s', num: true, render: (r) => V.num(r.reqrate, 3) },
        { key: 'reliable', label: 'Reliable', num: true, render: (r) => V.pct(r.reliable) },
        { key: 'p95LatencyMs', label: 'p95 latency', num: true, render: (r) => V.ms(r.p95LatencyMs) },
        { key: 'nworkers', label: 'Workers', num: true },
        { key: 'capacity', label: 'Capacity', num: true, render: (r) => V.num(r.capacity, 1) },
        { key: 'curload', label: 'Cur. load', num: true, render: (r) => V.num(r.curload, 3) },
        { key: 'requests1h', label: 'Requests 1h', num: true },
        { key: 'spark', label: 'Req/s, 30 min', sort: (r) => r.spark.reduce((a, b) => a + b, 0), render: (r) => V.sparkline(r.spark) },
        { key: 'lastSeen', label: 'Last seen', num: true, render: (r) => V.ago(r.lastSeen, data.now) },
      ].filter(Boolean);
      const prev = table && table.querySelector('th .arrow');
      table = V.table(cols, data.endpoints, {
        id: 'endpoints-table', sortKey: 'reqrate', desc: true,
        onRow: (r) => { location.hash = `#/endpoints/${r.id}`; },
      });
      void prev;
      body.replaceChildren(table);
    };
  };

  const FRAMES = { '1h': '1m', '6h': '5m', '24h': '15m', '7d': '1h' };
  const FRAME_S = { '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

  async function statsSeries(id, metric, t1, t2, step) {
    const r = await V.api('/get_endpoint_stats/', { method: 'POST', body: { id, metric_name: metric, t1, t2, step } });
    return r[metric];
  }

  V.pages.endpoint = async function endpoint(root, params) {
    const id = Number(params.id);
    const tf = FRAMES[params.query.get('tf')] ? params.query.get('tf') : '1h';
    const picker = el('select', { id: 'timeframe', onchange: (e) => { location.hash = `#/endpoints/${id}?tf=${e.target.value}`; } },
      Object.keys(FRAMES).map((f) => el('option', { value: f, selected: f === tf }, `last ${f}`)));
    const title = el('h1', {}, `Endpoint ${id}`);
    root.append(el('div', { class: 'row' }, el('a', { href: '#/endpoints' }, '← Endpoints')),
      el('div', { class: 'row' }, title, el('span', { class: 'spacer' }), el('label', {}, 'Timeframe ', picker)));
    const tiles = el('div', { class: 'tiles', id: 'endpoint-tiles' });
    const charts = el('div', { class: 'charts', id: 'endpoint-charts' });
    const workers = el('div', { id: 'workers' });
    root.append(tiles, charts, el('h2', {}, 'Workers'), workers);

    return async function refresh() {
      const sess = await V.api('/ui/api/session');
      // 120 instants, the last one now (t2 is exclusive)
      const span = FRAME_S[tf];
      const step = Math.max(1, Math.ceil(span / 120));
      const t2 = Math.floor(sess.now) + 1;
      const t1 = t2 - 1 - 119 * step;
      const metricsQs = V.qs({ timeframe: tf, granularity: FRAMES[tf], metrics: 'performance,errors,costs' });
      const [cur, doc, wk, cs, reqrate, curload, reliable, nworkers, capacity] = await Promise.all([
        V.api('/get_endpoint_stats/', { method: 'POST', body: { id } }),
        V.api(`/v2/endpoints/${id}/metrics?${metricsQs}`),
        V.api(`/ui/api/endpoints/${id}/workers`),
        V.api(`/ui/api/endpoints/${id}/cold-starts?${V.qs({ timeframe: tf, granularity: FRAMES[tf] })}`),
        ...['reqrate', 'curload', 'reliable', 'nworkers', 'capacity'].map((m) => statsSeries(id, m, t1, t2, step)),
      ]);
      title.textContent = `${cur.endpoint || 'Endpoint'} (#${id})`;
      const s = doc.summary;
      const cold = doc.coldStarts || {};
      const budget = doc.costs && doc.costs.budgetAnalysis;
      const cur_ = (v) => `${V.num(v, 4)} ${doc.costs ? doc.costs.currency : ''}`;
      tiles.replaceChildren(
        V.tile('Requests/s', V.num(cur.reqrate, 3), `window ${sess.statsWindowSeconds} s`, { 'data-stat': 'reqrate' }),
        V.tile('Reliable', V.pct(cur.reliable), 'successes / requests', { 'data-stat': 'reliable' }),
        V.tile('Workers', V.num(cur.nworkers), `capacity ${V.num(cur.capacity, 1)}`, { 'data-stat': 'nworkers' }),
        V.tile('Current load', V.num(cur.curload, 3), 'work units / s', { 'data-stat': 'curload' }),
        V.tile('Total requests', V.num(cur.totreqs), 'all time', { 'data-stat': 'totreqs' }),
        V.tile(`p95 latency (${tf})`, V.ms(s.p95Latency === null ? null : s.p95Latency * 1000),
          `p50 ${V.ms(s.p50Latency === null ? null : s.p50Latency * 1000)} · p99 ${V.ms(s.p99Latency === null ? null : s.p99Latency * 1000)}`, { 'data-stat': 'p95' }),
        V.tile(`Requests (${tf})`, V.num(s.totalExecutions), `success ${s.successRate === null ? '—' : V.num(s.successRate, 1) + '%'}`, { 'data-stat': 'executions' }),
        V.tile(`Cold starts (${tf})`, V.num(cold.count), `rate ${cold.rate === null || cold.rate === undefined ? '—' : V.num(cold.rate, 2) + '%'} · avg ${cold.averageDuration ? V.num(cold.averageDuration, 2) + ' s' : '—'}`, { 'data-stat': 'coldStarts' }),
        V.tile(`Cost (${tf})`, cur_(s.totalCost), budget ? `budget ${V.num(budget.percentUsed, 1)}% used this month` : 'no monthly budget set', { 'data-stat': 'cost' }),
      );
      const xs = Array.from({ length: reqrate.length }, (_, i) => t1 + i * step);
      const perf = doc.performance || {};
      const lat = (perf.latency && perf.latency.timeSeries) || [];
      const thr = (perf.throughput && perf.throughput.timeSeries) || [];
      const errs = (doc.errorRates && doc.errorRates.timeSeries) || [];
      const gstep = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600 }[FRAMES[tf]];
      const n = thr.map((p) => p.requestsPerSecond * gstep);
      const byClass = (field) => errs.map((p, i) => (p[field] === null ? 0 : Math.round((p[field] / 100) * n[i])));
      const ms = (field) => lat.map((p) => (p[field] === null ? null : p[field] * 1000));
      const costs = (doc.costs && doc.costs.timeSeries) || [];
      let acc = 0;
      const cumulative = costs.map((p) => (acc += p.cost));
      const priced = budget || costs.some((p) => p.cost);
      const costSeries = priced ? [{ label: 'cost per point', values: costs.map((p) => p.cost) },
        { label: 'cumulative cost', values: cumulative }] : [];
      if (budget) {
        const perWindow = budget.monthlyBudget * (FRAME_S[tf] / (30 * 86400));
        costSeries.push({ label: `budget pro rata (${V.num(budget.monthlyBudget)} / month)`, values: costs.map(() => perWindow), dash: [6, 4], color: '#c0392b' });
      }
      charts.replaceChildren(
        V.chart({ title: 'Requests and errors by class (per point)', x: V.secs(thr.map((p) => p.timestamp)), series: [
          { label: 'requests', values: n },
          { label: '4xx', values: byClass('userErrorRate') },
          { label: '5xx', values: byClass('serverErrorRate') },
          { label: 'timeouts', values: byClass('timeoutRate') },
          { label: 'resource', values: byClass('resourceErrorRate') },
        ] }),
        V.chart({ title: 'Latency p50 / p95 / p99 (ms)', x: V.secs(lat.map((p) => p.timestamp)), series: [
          { label: 'p50', values: ms('p50') }, { label: 'p95', values: ms('p95') }, { label: 'p99', values: ms('p99') },
        ] }),
        V.chart({ title: 'Workers vs load vs capacity', x: xs, series: [
          { label: 'capacity', values: capacity }, { label: 'load (work/s)', values: curload },
          { label: 'workers', values: nworkers, scale: 'n', dash: [4, 3] },
        ] }),
        V.chart({ title: 'Requests/s and reliability (stats)', x: xs, series: [
          { label: 'req/s', values: reqrate }, { label: 'reliable', values: reliable, scale: 'r' },
        ] }),
        V.chart({ title: 'Cold starts (per point)', x: V.secs(cs.timeSeries.map((p) => p.timestamp)), series: [
          { label: 'cold starts', values: cs.timeSeries.map((p) => p.coldStarts), fill: 'rgba(232,89,12,0.15)', color: '#e8590c' },
          { label: 'cold-start seconds', values: cs.timeSeries.map((p) => p.coldStartSeconds), scale: 's', dash: [4, 3], color: '#7048e8' },
        ], empty: 'No cold starts reported (request events with "cold_start": true).' }),
        V.chart({ title: `Cost vs budget (${doc.costs ? doc.costs.currency : ''})`, x: priced ? V.secs(costs.map((p) => p.timestamp)) : [], series: costSeries,
          empty: 'No cost: set prices with PUT /v2/endpoints/{id}/pricing.' }),
      );
      if (!wk.workers.length) {
        workers.replaceChildren(V.emptyState('No worker heartbeats in the last day',
          'Workers appear when they send heartbeats (the vast-ai pyworker status report) to the heartbeats topic.',
          `{"v": 1, "type": "heartbeat", "ts": <unix seconds>, "tenant": "${wk.tenant}", "endpoint_id": ${id}, "id": 7, "max_perf": 100, "cur_load": 3}`));
      } else {
        workers.replaceChildren(V.table([
          { key: 'workerId', label: 'Worker', num: true },
          { key: 'autogroupId', label: 'Autogroup', num: true },
          { key: 'live', label: 'State', render: (w) => el('span', { class: `pill ${w.live ? 'ok' : 'bad'}` }, w.live ? 'live' : 'gone') },
          { key: 'lastHeartbeat', label: 'Last heartbeat', num: true, render: (w) => el('span', { title: V.time(w.lastHeartbeat) }, V.ago(w.lastHeartbeat, wk.now)) },
          { key: 'curLoad', label: 'Cur. load', num: true, render: (w) => V.num(w.curLoad, 2) },
          { key: 'maxPerf', label: 'Max perf', num: true, render: (w) => V.num(w.maxPerf, 1) },
          { key: 'curCapacity', label: 'Capacity', num: true, render: (w) => `${V.num(w.curCapacity, 1)} / ${V.num(w.maxCapacity, 1)}` },
          { key: 'requestsWorking', label: 'Working', num: true },
          { key: 'gpuUtil', label: 'GPU util', num: true, render: (w) => V.num(w.gpuUtil, 2) },
          { key: 'errorMsg', label: 'Error', render: (w) => w.errorMsg || '' },
        ], wk.workers, { id: 'workers-table', sortKey: 'lastHeartbeat', desc: true }));
      }
    };
  };
}(window.Vitals));
