/* Training tasks (list) and Task (scalars with min/max band, console log, debug images,
   Plotly plots) pages, over the ClearML-style /events.* routes. */
'use strict';

(function taskPages(V) {
  const { el } = V;

  const SEND_TASK_EVENTS = [
    'curl -s -X POST localhost:8000/events.add_batch -H "Authorization: Bearer <admin key>" \\',
    '  -H "Content-Type: application/json-lines" --data-binary @- <<\'EOF\'',
    '{"type": "training_stats_scalar", "task": "my-run", "iter": 1, "metric": "loss", "variant": "train", "value": 0.9}',
    '{"type": "log", "task": "my-run", "level": "info", "msg": "epoch 1 done"}',
    'EOF',
    '# or report from the ClearML SDK (Task.init / Logger) pointed at this API',
  ].join('\n');

  V.pages.tasks = async function tasks(root) {
    root.append(el('h1', {}, 'Training tasks'));
    const body = el('div');
    root.append(body);
    return async function refresh() {
      const data = await V.api('/ui/api/tasks');
      if (!data.tasks.length) {
        body.replaceChildren(V.emptyState('No training tasks yet',
          'Tasks appear when their events (scalars, logs, debug images, plots) reach Vitals:', SEND_TASK_EVENTS));
        return;
      }
      const all = V.session.role === 'superadmin';
      body.replaceChildren(V.table([
        { key: 'task', label: 'Task', render: (t) => el('a', { href: `#/tasks/${encodeURIComponent(t.task)}`, 'data-task': t.task }, t.task) },
        all ? { key: 'tenant', label: 'Tenant', render: (t) => t.tenant } : null,
        { key: 'kinds', label: 'Holds', sort: (t) => t.kinds.join(','), render: (t) => t.kinds.map((k) => el('span', { class: 'pill' }, k)) },
        { key: 'lastSeen', label: 'Last event', num: true, render: (t) => el('span', { title: V.time(t.lastSeen) }, V.ago(t.lastSeen)) },
      ].filter(Boolean), data.tasks, { id: 'tasks-table', sortKey: 'lastSeen', desc: true,
        onRow: (t) => { location.hash = `#/tasks/${encodeURIComponent(t.task)}`; } }));
    };
  };

  const TABS = { scalars: 'Scalars', console: 'Console', images: 'Debug images', plots: 'Plots' };

  V.pages.task = async function task(root, params) {
    const id = params.id;
    const tab = TABS[params.query.get('tab')] ? params.query.get('tab') : 'scalars';
    const href = (t) => `#/tasks/${encodeURIComponent(id)}?tab=${t}`;
    root.append(el('div', { class: 'row' }, el('a', { href: '#/tasks' }, '← Training tasks')),
      el('h1', {}, `Task ${id}`),
      el('nav', { class: 'tabs' }, Object.entries(TABS).map(([k, label]) =>
        el('a', { href: href(k), class: k === tab ? 'active' : null, 'data-tab': k }, label))));
    const body = el('div', { id: `task-${tab}` });
    root.append(body);
    return ({ scalars, console: consoleTab, images, plots })[tab](body, id);
  };

  function union(xs) {
    return Array.from(new Set(xs.flat())).sort((a, b) => a - b);
  }

  async function scalars(body, task) {
    return async function refresh() {
      const data = await V.events('scalar_metrics_iter_histogram', { task });
      const metrics = Object.keys(data).sort();
      if (!metrics.length) {
        body.replaceChildren(V.emptyState('No scalars for this task',
          'Report training_stats_scalar events (metric, variant, iter, value) to see one chart per metric.'));
        return;
      }
      body.replaceChildren(el('p', { class: 'muted' }, 'Mean per downsampled interval, with the min–max band of the values in it.'),
        el('div', { class: 'charts' }, metrics.map((metric) => {
          const variants = Object.keys(data[metric]).sort();
          const x = union(variants.map((v) => data[metric][v].x));
          const series = [];
          const bands = [];
          variants.forEach((v, i) => {
            const d = data[metric][v];
            const at = new Map(d.x.map((xx, j) => [xx, j]));
            const pick = (arr) => x.map((xx) => (at.has(xx) ? arr[at.get(xx)] : null));
            const c = V.color(i);
            series.push({ label: v, values: pick(d.y), color: c, width: 2 });
            series.push({ label: `${v} max`, values: pick(d.y_max), color: `${c}55`, width: 0.5 });
            series.push({ label: `${v} min`, values: pick(d.y_min), color: `${c}55`, width: 0.5 });
            bands.push([series.length - 2, series.length - 1, `${c}22`]);
          });
          return V.chart({ title: metric, x, series, bands, time: false });
        })));
    };
  }

  function consoleTab(body, task) {
    const search = el('input', { id: 'log-search', class: 'wide', placeholder: 'Search the loaded lines', type: 'search' });
    const info = el('span', { class: 'muted', id: 'log-info' });
    const older = el('button', { class: 'secondary', id: 'log-older' }, 'Load older');
    const latest = el('button', { class: 'secondary', id: 'log-latest' }, 'Back to latest');
    const pre = el('div', { class: 'log', id: 'log-lines' });
    body.append(el('div', { class: 'row' }, search, older, latest, info), el('div', { style: 'height:8px' }), pre);
    let lines = [];
    let scrollId = null;
    let total = 0;
    let paged = false;
    const PAGE = 100;
    const draw = () => {
      const q = search.value.trim().toLowerCase();
      const shown = q ? lines.filter((e) => `${e.level} ${e.msg}`.toLowerCase().includes(q)) : lines;
      pre.replaceChildren(...shown.map((e) => {
        const line = el('div', { class: `lvl-${(e.level || '').toLowerCase()}`, 'data-line': '' },
          `${V.time(e.timestamp / 1000)} ${e.worker || ''} ${(e.level || '').toUpperCase()} `);
        const msg = String(e.msg);
        const at = q ? msg.toLowerCase().indexOf(q) : -1;
        if (at >= 0) line.append(msg.slice(0, at), el('mark', {}, msg.slice(at, at + q.length)), msg.slice(at + q.length));
        else line.append(msg);
        return line;
      }));
      info.textContent = `${shown.length} shown · ${lines.length} loaded of ${total}`;
      older.disabled = lines.length >= total;
      if (!total) pre.replaceChildren(V.emptyState('No console output', 'Log events ({"type": "log", "task": …, "level", "msg"}) appear here.'));
    };
    const load = async (more) => {
      const d = await V.events('get_task_log', { task, batch_size: PAGE, navigate_earlier: true, order: 'asc', scroll_id: more ? scrollId : undefined });
      scrollId = d.scroll_id;
      total = d.total;
      lines = more ? d.events.concat(lines) : d.events;
      draw();
    };
    search.addEventListener('input', draw);
    older.addEventListener('click', () => { paged = true; load(true).catch(V.showError); });
    latest.addEventListener('click', () => { paged = false; load(false).catch(V.showError); });
    return async function refresh() { if (!paged) await load(false); };
  }

  function images(body, task) {
    const grid = el('div', { id: 'image-grid' });
    const earlier = el('button', { class: 'secondary', id: 'images-earlier' }, 'Earlier iterations');
    body.append(el('div', { class: 'row' }, el('span', { class: 'muted' }, 'Debug images of the latest iterations, by metric and iteration.'), el('span', { class: 'spacer' }), earlier), grid);
    let scrollId = null;
    let paged = false;
    const load = async (more) => {
      const d = await V.events('debug_images', { metrics: [{ task }], iters: 3, navigate_earlier: true, scroll_id: more ? scrollId : undefined });
      scrollId = d.scroll_id;
      const groups = d.metrics.filter((m) => m.iterations.length);
      if (!groups.length) {
        if (!more) grid.replaceChildren(V.emptyState('No debug images', 'Report training_debug_image events with a url to see them here, by iteration.'));
        earlier.disabled = true;
        return;
      }
      grid.replaceChildren(...groups.map((m) => el('div', { class: 'card' }, el('h3', {}, m.metric),
        m.iterations.map((it) => el('div', {}, el('div', { class: 'muted' }, `iteration ${it.iter}`),
          el('div', { class: 'images' }, it.events.map((e) => el('figure', { 'data-image': `${e.metric}/${e.variant}/${e.iter}` },
            el('img', { src: e.url, alt: `${e.metric} ${e.variant} iteration ${e.iter}` }),
            el('figcaption', {}, `${e.variant} · iter ${e.iter}`)))))))));
    };
    earlier.addEventListener('click', () => { paged = true; load(true).catch(V.showError); });
    return async function refresh() { if (!paged) await load(false); };
  }

  async function plots(body, task) {
    await V.loadScript('/ui/assets/vendor/plotly/plotly-cartesian.min.js');
    return async function refresh() {
      const d = await V.events('get_task_plots', { task, iters: 1 });
      if (!d.plots.length) {
        body.replaceChildren(V.emptyState('No plots', 'Report plot events (plot_str: a Plotly figure as JSON) to see them here.'));
        return;
      }
      const cards = d.plots.map((p) => {
        const box = el('div', { class: 'plot', 'data-plot': `${p.metric}/${p.variant}` });
        const card = el('div', { class: 'chart' }, el('h3', {}, `${p.metric} / ${p.variant} · iter ${p.iter}`), box);
        let fig = null;
        try { fig = JSON.parse(p.plot_str); } catch (e) { box.append(el('div', { class: 'error' }, `plot_str is not JSON: ${e.message}`)); }
        card._fig = fig;
        card._box = box;
        return card;
      });
      body.replaceChildren(el('div', { class: 'charts' }, cards));
      for (const c of cards) {
        if (!c._fig) continue;
        const layout = Object.assign({ autosize: true, height: 320, margin: { t: 30, r: 10, b: 40, l: 50 } }, c._fig.layout || {});
        window.Plotly.newPlot(c._box, c._fig.data || [], layout, { displaylogo: false, responsive: true, showLink: false, showSendToCloud: false });
      }
    };
  }
}(window.Vitals));
