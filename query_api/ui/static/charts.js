/* Charts on uPlot (vendored: static/vendor/uplot) and SVG sparklines. */
'use strict';

(function charts(V) {
  const PALETTE = ['#2f6fed', '#e8590c', '#2b8a3e', '#c2255c', '#7048e8', '#0b7285', '#a61e4d',
    '#5c940d', '#d9480f', '#1864ab'];
  V.color = (i) => PALETTE[i % PALETTE.length];

  const hasData = (series) => series.some((s) => s.values.some((v) => v !== null && v !== undefined));

  /**
   * A line chart in a card. x: seconds (time) or numbers (time: false); series: [{label, values,
   * color?, dash?, fill?, scale?, hidden?}]; bands: [[hiIndex, loIndex, color]] (0-based into
   * series) filled between. Returns the card element (data-chart=title, data-points=#x).
   */
  V.chart = function chart({ title, x, series, time = true, height = 220, bands = [], yFmt, empty }) {
    const card = V.el('div', { class: 'chart', 'data-chart': title, 'data-points': x.length });
    if (!x.length || !hasData(series)) {
      card.append(V.el('h3', {}, title), V.el('div', { class: 'empty' }, empty || 'No data in this range.'));
      return card;
    }
    const scales = { x: { time } };
    const axes = [{}, { size: 60, values: yFmt ? (u, vals) => vals.map(yFmt) : undefined }];
    const uSeries = [{ label: time ? 'time' : 'iteration' }];
    series.forEach((s, i) => {
      const c = s.color || V.color(i);
      const one = { label: s.label, stroke: c, width: s.width || 1.5, spanGaps: false,
        points: { show: x.length < 40 } };
      if (s.dash) one.dash = s.dash;
      if (s.fill) one.fill = s.fill;
      if (s.scale) { one.scale = s.scale; scales[s.scale] = {}; axes.push({ scale: s.scale, side: 1, grid: { show: false }, size: 60 }); }
      if (s.hidden) one.show = false;
      uSeries.push(one);
    });
    const opts = { title, width: 400, height, scales, axes, series: uSeries, legend: { live: true } };
    if (bands.length) opts.bands = bands.map(([hi, lo, fill]) => ({ series: [hi + 1, lo + 1], fill: fill || 'rgba(47,111,237,0.12)' }));
    const data = [x, ...series.map((s) => s.values.map((v) => (v === undefined ? null : v)))];
    // Size to the card once it is in the page; uPlot draws on a canvas.
    requestAnimationFrame(() => {
      const width = Math.max(280, card.clientWidth - 20);
      // eslint-disable-next-line no-new
      const u = new uPlot({ ...opts, width }, data, card);
      card._uplot = u;
    });
    return card;
  };

  // Charts follow the window's width (uPlot draws at a fixed size).
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      document.querySelectorAll('.chart').forEach((card) => {
        if (card._uplot) card._uplot.setSize({ width: Math.max(280, card.clientWidth - 20), height: card._uplot.height });
      });
    }, 150);
  });

  /** A small SVG polyline of `values` (nulls as 0). */
  V.sparkline = function sparkline(values, { width = 120, height = 26 } = {}) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('width', width); svg.setAttribute('height', height);
    svg.setAttribute('class', 'spark');
    svg.setAttribute('data-points', values.length);
    if (!values.length) return svg;
    const vs = values.map((v) => v || 0);
    const max = Math.max(...vs) || 1;
    const step = values.length > 1 ? (width - 2) / (values.length - 1) : 0;
    const pts = vs.map((v, i) => `${(1 + i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.setAttribute('fill', 'none'); line.setAttribute('stroke', '#2f6fed');
    line.setAttribute('stroke-width', '1.5');
    svg.append(line);
    return svg;
  };

  /** ISO timestamps → unix seconds. */
  V.secs = (stamps) => stamps.map((t) => Date.parse(t) / 1000);
}(window.Vitals));
