// Tally's live dashboard: plain browser JavaScript served as is (no build step, no CDN).
// It reads the public REST API and follows GET /v1/stream for live updates.

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'tally.readKey';
const HOUR = 3_600_000;
/** Range → [length in ms, bucket interval]. */
const RANGES = {
  '1h': [HOUR, 'minute'],
  '24h': [24 * HOUR, 'hour'],
  '7d': [168 * HOUR, 'hour'],
  '30d': [720 * HOUR, 'day'],
};
const METRICS = [
  ['events', 'Events'],
  ['page_views', 'Page views'],
  ['unique_users', 'Unique users'],
];
const SVG = 'http://www.w3.org/2000/svg';
const count = new Intl.NumberFormat();
const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const state = { range: '24h', tz: browserZone(), commits: null, lastCommit: 0 };

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

// ---- API key: asked for once on a 401, kept in localStorage -------------------------------

let keyPrompt = null;

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORE);
  } catch {
    return null;
  }
}

function authHeaders() {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Resolves once the user has entered a key; concurrent callers share one dialog. */
function askForKey(rejected) {
  keyPrompt ??= new Promise((resolve) => {
    const dialog = $('key-dialog');
    $('key-error').hidden = !rejected;
    $('key-input').value = '';
    $('key-form').addEventListener(
      'submit',
      () => {
        try {
          localStorage.setItem(KEY_STORE, $('key-input').value.trim());
        } catch {
          // Storage disabled: the key then lasts until the page closes (kept by the browser's form).
        }
        keyPrompt = null;
        showForgetButton();
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return keyPrompt;
}

function showForgetButton() {
  $('forget-key').hidden = storedKey() === null;
}

async function api(path) {
  for (;;) {
    const sentKey = storedKey() !== null;
    const res = await fetch(path, { headers: authHeaders() });
    if (res.status === 401 || res.status === 403) {
      await askForKey(sentKey);
      continue;
    }
    if (!res.ok) throw new Error(`${path} answered HTTP ${res.status}`);
    return res.json();
  }
}

// ---- Loading and rendering --------------------------------------------------------------

let loading = false;
let loadAgain = false;
/** Loads start at most this often, however busy the stream, to spare the database. */
const MIN_GAP_MS = 750;

/** Reloads everything; calls made while a load runs coalesce into one more load. */
function refresh() {
  if (loading) {
    loadAgain = true;
    return;
  }
  loading = true;
  const started = Date.now();
  load()
    .then(
      () => ($('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`),
      (err) => ($('updated').textContent = `Could not load: ${err.message}`),
    )
    .finally(() => {
      const wait = Math.max(0, MIN_GAP_MS - (Date.now() - started));
      setTimeout(() => {
        loading = false;
        if (loadAgain) {
          loadAgain = false;
          refresh();
        }
      }, wait);
    });
}

async function load() {
  const [span, interval] = RANGES[state.range];
  const to = Date.now();
  const range = `from=${to - span}&to=${to}`;
  const tz = encodeURIComponent(state.tz);
  const [summary, pages, types, pipeline, ...series] = await Promise.all([
    api(`/v1/stats/summary?${range}`),
    api(`/v1/stats/top-pages?${range}&limit=10`),
    api(`/v1/stats/event-types?${range}&limit=10`),
    api('/v1/pipeline'),
    ...METRICS.map(([m]) => api(`/v1/stats/timeseries?${range}&metric=${m}&interval=${interval}&tz=${tz}`)),
  ]);
  setCount($('tile-events'), summary.events);
  setCount($('tile-page-views'), summary.page_views);
  setCount($('tile-unique-users'), summary.unique_users);
  renderRows($('top-pages'), pages.pages, (p) => [p.page_url, p.views]);
  renderRows($('event-types'), types.types, (t) => [t.type, t.count]);
  renderPipeline(pipeline);
  $('chart-title').textContent = `Activity per ${interval}`;
  renderChart(series, interval);
}

function setCount(el, n) {
  el.textContent = count.format(n);
  el.dataset.value = String(n);
}

function renderRows(table, rows, cells) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (rows.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = 2;
    td.className = 'empty';
    td.textContent = 'Nothing in this range';
    return;
  }
  for (const row of rows) {
    const [label, n] = cells(row);
    const tr = body.insertRow();
    tr.insertCell().textContent = label;
    const td = tr.insertCell();
    td.className = 'num';
    setCount(td, n);
  }
}

function renderPipeline(p) {
  const lag = p.consumer_lag;
  $('pipe-lag').textContent =
    lag !== null
      ? `${count.format(lag.total)} across ${lag.partitions.length} partition(s)`
      : p.mode === 'embedded'
        ? 'none (embedded: no event log)'
        : 'not reported by this process';
  const dead = p.dead_letters;
  $('pipe-dead').textContent = `${count.format(dead.unreplayed)} waiting, ${count.format(dead.total)} in all`;
  noteCommit(p.last_commit);
}

function noteCommit(iso) {
  if (iso) state.lastCommit = Math.max(state.lastCommit, Date.parse(iso));
  const el = $('pipe-commit');
  if (!state.lastCommit) {
    el.textContent = 'none yet';
    return;
  }
  const ago = Math.max(0, Math.round((Date.now() - state.lastCommit) / 1000));
  const when = new Date(state.lastCommit).toLocaleString(undefined, { timeZone: state.tz });
  el.textContent = ago < 90 ? `${ago} s ago` : when;
  el.title = when;
}

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

let drawn = null;

// Drawn at the container's own width, so that labels keep their size on a phone.
new ResizeObserver(() => {
  if (drawn && drawn.width !== $('chart').clientWidth) renderChart(drawn.series, drawn.interval);
}).observe($('chart'));

function renderChart(series, interval) {
  const W = $('chart').clientWidth || 800;
  drawn = { series, interval, width: W };
  const [H, L, R, T, B] = [W < 500 ? 200 : 260, 48, 12, 8, 22];
  const n = series[0].points.length;
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  const max = niceMax(Math.max(1, ...values));
  const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const peaks = METRICS.map(
    ([, label], i) => `${label} peak ${count.format(Math.max(0, ...series[i].points.map((p) => p.value)))}`,
  );
  svg.setAttribute('aria-label', `Chart of ${n} ${interval} buckets. ${peaks.join(', ')}.`);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    svg.append(el('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.append(el('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, count.format(v)));
  }
  const options =
    interval === 'day'
      ? { month: 'short', day: 'numeric' }
      : state.range === '7d'
        ? { weekday: 'short', hour: '2-digit', minute: '2-digit' }
        : { hour: '2-digit', minute: '2-digit' };
  const label = new Intl.DateTimeFormat(undefined, { ...options, timeZone: state.tz });
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
  renderChartTable(series, interval);
  METRICS.forEach(([metric], i) => {
    const pts = series[i].points.map((p, j) => `${x(j).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    svg.append(el('polyline', { class: `series s-${metric}`, points: pts }));
  });
  $('chart').replaceChildren(svg);
}

/** The chart's numbers for keyboard and screen-reader users (newest bucket first). */
function renderChartTable(series, interval) {
  const body = $('chart-table').tBodies[0];
  const style = interval === 'day' ? { dateStyle: 'medium' } : { dateStyle: 'short', timeStyle: 'short' };
  const label = new Intl.DateTimeFormat(undefined, { ...style, timeZone: state.tz });
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
  body.replaceChildren(...rows.reverse());
}

// ---- Live stream --------------------------------------------------------------------------

function setConnection(live) {
  const c = $('conn');
  c.dataset.state = live ? 'live' : 'down';
  c.textContent = live ? 'Live' : 'Reconnecting…';
}

function onSnapshot(s) {
  const r = $('tile-rate');
  r.textContent = rate.format(s.rate);
  r.dataset.value = String(s.rate);
  noteCommit(s.last_commit);
  // A new commit (or a restarted server, whose counter starts again) means the numbers moved.
  if (s.commits !== state.commits) {
    state.commits = s.commits;
    refresh();
  }
}

/**
 * Follows GET /v1/stream with fetch rather than EventSource, because EventSource cannot send
 * the Authorization header (and keys in URLs end up in logs). Like EventSource it reconnects by
 * itself, waiting the server's `retry:` time between attempts.
 */
async function follow() {
  let retryMs = 1000;
  for (;;) {
    try {
      const sentKey = storedKey() !== null;
      const res = await fetch('/v1/stream', {
        headers: { accept: 'text/event-stream', ...authHeaders() },
        cache: 'no-store',
      });
      if (res.status === 401 || res.status === 403) {
        await askForKey(sentKey);
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      setConnection(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replaceAll('\r\n', '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const lines = buffer.slice(0, end).split('\n');
          buffer = buffer.slice(end + 2);
          const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
          const retry = lines.find((l) => l.startsWith('retry:'));
          if (retry) retryMs = Number(retry.slice(6)) || retryMs;
          if (data.length > 0) onSnapshot(JSON.parse(data.join('\n')));
        }
      }
    } catch {
      // Connection refused or dropped (e.g. the server restarts): try again below.
    }
    setConnection(false);
    await new Promise((resolve) => setTimeout(resolve, retryMs + Math.random() * 250));
  }
}

// ---- Start ------------------------------------------------------------------------------

function setUpControls() {
  const tz = $('tz');
  const zones = new Set(
    typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [],
  );
  zones.add('UTC');
  zones.add(state.tz);
  for (const zone of [...zones].sort()) tz.add(new Option(zone, zone, false, zone === state.tz));
  $('range').value = state.range;
  $('range').addEventListener('change', (e) => {
    state.range = e.target.value;
    refresh();
  });
  tz.addEventListener('change', (e) => {
    state.tz = e.target.value;
    refresh();
  });
  $('controls').addEventListener('submit', (e) => e.preventDefault());
  // The key is required to show anything: Escape does not dismiss the dialog.
  $('key-dialog').addEventListener('cancel', (e) => e.preventDefault());
  $('forget-key').addEventListener('click', () => {
    localStorage.removeItem(KEY_STORE);
    location.reload();
  });
  showForgetButton();
}

setUpControls();
refresh();
void follow();
// Also refresh now and then: the range slides with time, and commits made by other processes
// (distributed mode) do not show in this server's stream.
setInterval(refresh, 30_000);
