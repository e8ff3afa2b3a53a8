// The activity chart: an SVG line per metric, drawn at the container's own width, and the same
// numbers as a table for keyboard and screen-reader users.

import { count, setCount } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Draws into `box` (and `table`) the series answered by /v1/stats/timeseries, one per entry of
 * `metrics` ([name, label]); `view` is {interval, range, tz}. Redraws itself when resized, so
 * that labels keep their size on a phone.
 */
export function chart(box, table, metrics) {
  let drawn = null;
  new ResizeObserver(() => {
    if (drawn && drawn.width !== box.clientWidth) draw(drawn.series, drawn.view);
  }).observe(box);

  function draw(series, view) {
    const W = box.clientWidth || 800;
    drawn = { series, view, width: W };
    const [H, L, R, T, B] = [W < 500 ? 200 : 260, 48, 12, 8, 22];
    const n = series[0].points.length;
    const values = series.flatMap((s) => s.points.map((p) => p.value));
    const max = niceMax(Math.max(1, ...values));
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    const peaks = metrics.map(
      ([, label], i) => `${label} peak ${count.format(Math.max(0, ...series[i].points.map((p) => p.value)))}`,
    );
    svg.setAttribute('aria-label', `Chart of ${n} ${view.interval} buckets. ${peaks.join(', ')}.`);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      svg.append(el('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(el('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, count.format(v)));
    }
    const options =
      view.interval === 'day'
        ? { month: 'short', day: 'numeric' }
        : view.range === '7d'
          ? { weekday: 'short', hour: '2-digit', minute: '2-digit' }
          : { hour: '2-digit', minute: '2-digit' };
    const label = new Intl.DateTimeFormat(undefined, { ...options, timeZone: view.tz });
    const step = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(W / 130))));
    for (let i = 0; i < n; i += step) {
      const anchor = i === 0 ? 'start' : 'middle';
      svg.append(
        el(
          'text',
          { x: x(i), y: H - 4, 'text-anchor': anchor },
          label.format(Date.parse(series[0].points[i].t)),
        ),
      );
    }
    drawTable(series, view);
    metrics.forEach(([metric], i) => {
      const pts = series[i].points.map((p, j) => `${x(j).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
      svg.append(el('polyline', { class: `series s-${metric}`, points: pts }));
    });
    box.replaceChildren(svg);
  }

  /** The chart's numbers, newest bucket first. */
  function drawTable(series, view) {
    const style =
      view.interval === 'day' ? { dateStyle: 'medium' } : { dateStyle: 'short', timeStyle: 'short' };
    const label = new Intl.DateTimeFormat(undefined, { ...style, timeZone: view.tz });
    const rows = series[0].points.map((p, j) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = label.format(Date.parse(p.t));
      tr.append(th);
      for (const s of series) {
        const td = tr.insertCell();
        td.className = 'num';
        setCount(td, s.points[j].value);
      }
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows.reverse());
  }

  return draw;
}
