// Tally's live dashboard: plain browser JavaScript modules served as is (no build step, no CDN).
// It reads the public REST API and follows GET /v1/stream for live updates. The view (filters
// and range) lives in the URL, so a shared URL opens the same view and Back undoes a filter.

import { chart } from './chart.js';
import { describeFilter, filterParams, readView, viewSearch, withFilter } from './filters.js';
import { count, duration, setCount, setDuration, setPercent } from './format.js';
import { setUpFunnel } from './funnel.js';
import { setUpPanels } from './panels.js';
import { setUpRetention } from './retention.js';

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
const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const state = { ...readView(location.search), tz: browserZone(), commits: null, lastCommit: 0 };

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

/** Thrown for an answer other than 2xx; `errors` is the API's per-field list, if any. */
class ApiError extends Error {
  constructor(path, status, body) {
    super(body?.message ?? `${path.split('?')[0]} answered HTTP ${status}`);
    this.status = status;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

/** `init` as for fetch (method, headers, body); the key's header is added. */
async function api(path, init = {}) {
  for (;;) {
    const sentKey = storedKey() !== null;
    const res = await fetch(path, { ...init, headers: { ...init.headers, ...authHeaders() } });
    if (res.status === 401 || res.status === 403) {
      await askForKey(sentKey);
      continue;
    }
    if (!res.ok) throw new ApiError(path, res.status, await res.json().catch(() => null));
    return res.json();
  }
}

// ---- The view: filters and range, kept in the URL -----------------------------------------

/** Shows `view` and reloads; `how` is 'push' (a new history entry), 'replace', or null (popstate). */
function setView(view, how) {
  unmarkRendered();
  state.filters = view.filters;
  state.range = view.range;
  $('range').value = state.range;
  if (how) history[how === 'push' ? 'pushState' : 'replaceState'](null, '', viewSearch(view));
  renderChips();
  refresh();
  reloadProductViews();
}

function addFilter(dimension, value) {
  setView({ range: state.range, filters: withFilter(state.filters, dimension, value) }, 'push');
}

function renderChips(invalid = new Map()) {
  const list = $('filter-chips');
  list.replaceChildren(
    ...state.filters.map((f, i) => {
      const li = document.createElement('li');
      li.className = 'chip';
      li.dataset.filter = f;
      const text = document.createElement('span');
      text.textContent = describeFilter(f);
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = '×';
      remove.setAttribute('aria-label', `Remove filter: ${text.textContent}`);
      remove.addEventListener('click', () =>
        setView({ range: state.range, filters: state.filters.filter((_, j) => j !== i) }, 'push'),
      );
      li.append(text, remove);
      if (invalid.has(i)) {
        li.classList.add('invalid');
        li.title = invalid.get(i);
      }
      return li;
    }),
  );
  $('filters').hidden = state.filters.length === 0;
}

/** A 400 naming `filter[i]` marks that chip, so the user sees which one to remove. */
function markInvalidFilters(err) {
  if (!(err instanceof ApiError) || err.status !== 400) return;
  const invalid = new Map();
  for (const e of err.errors) {
    const m = /^filter\[(\d+)\]$/.exec(e.field ?? '');
    if (m) invalid.set(Number(m[1]), e.message ?? 'invalid filter');
  }
  if (invalid.size > 0) renderChips(invalid);
}

// ---- Loading and rendering --------------------------------------------------------------

let loading = false;
let loadAgain = false;
/** Loads start at most this often, however busy the stream, to spare the database. */
const MIN_GAP_MS = 750;

/**
 * `data-view` on <body> names the view (its URL search) whose every part has been drawn, or has
 * shown its error; it is absent while a load runs or after the view changed. Parts load and draw on their own, so
 * anything reading the page as a whole (the browser tests) waits for it.
 */
function unmarkRendered() {
  delete document.body.dataset.view;
}

/** Reloads everything; calls made while a load runs coalesce into one more load. */
function refresh() {
  unmarkRendered();
  if (loading) {
    loadAgain = true;
    return;
  }
  loading = true;
  const started = Date.now();
  const view = viewSearch(state);
  const tz = state.tz;
  load()
    .then(
      () => ($('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`),
      (err) => {
        markInvalidFilters(err);
        $('updated').textContent = `Could not load: ${err.message}`;
      },
    )
    .finally(() => {
      if (!loadAgain && viewSearch(state) === view && state.tz === tz) document.body.dataset.view = view;
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

/** The current view's range (epoch ms), time zone and filters, as the product views ask under it. */
function currentView() {
  const to = Date.now();
  return { from: to - RANGES[state.range][0], to, tz: state.tz, filters: state.filters };
}

/** `from`, `to` and the filters of the current view, for every stats request. */
function statsQuery() {
  const { from, to } = currentView();
  return `from=${from}&to=${to}${filterParams(state.filters)}`;
}

function breakdown(query) {
  return (dimension) =>
    api(`/v1/stats/breakdown?${query}&dimension=${encodeURIComponent(dimension)}&metrics=visitors&limit=10`);
}

/** Event types come from their own endpoint, shaped like a breakdown for the panel. */
function eventTypes(query) {
  return async () => {
    const body = await api(`/v1/stats/event-types?${query}&limit=10`);
    // The product views' event type boxes suggest the types seen.
    $('known-event-types').replaceChildren(...body.types.map((t) => new Option('', t.type)));
    return { results: body.types.map((t) => ({ value: t.type, events: t.count, percentage: null })) };
  };
}

function loadPanel(panel, query = statsQuery()) {
  return panel.load(panel.dimension === 'event_type' ? eventTypes(query) : breakdown(query));
}

/** Every part loads and shows on its own: one failing (say, a bad filter) leaves the others. */
async function load() {
  const interval = RANGES[state.range][1];
  const query = statsQuery();
  const tz = encodeURIComponent(state.tz);
  const view = { interval, range: state.range, tz: state.tz };
  // Answers for a view the user has already left are dropped (the next load shows the new one).
  const key = viewSearch(state) + state.tz;
  const current = (render) => (body) => viewSearch(state) + state.tz === key && render(body);
  const parts = await Promise.allSettled([
    api(`/v1/stats/summary?${query}`).then(current(renderTiles)),
    api('/v1/pipeline').then(renderPipeline),
    Promise.all(
      METRICS.map(([m]) => api(`/v1/stats/timeseries?${query}&metric=${m}&interval=${interval}&tz=${tz}`)),
    ).then(
      current((series) => {
        $('chart-title').textContent = `Activity per ${interval}`;
        drawChart(series, view);
      }),
    ),
    ...panels.map((panel) => loadPanel(panel, query)),
  ]);
  const failed = parts.find((p) => p.status === 'rejected');
  if (failed) throw failed.reason;
}

function renderTiles(s) {
  setCount($('tile-visitors'), s.visitors);
  setCount($('tile-visits'), s.visits);
  setPercent($('tile-bounce-rate'), s.bounce_rate);
  setDuration($('tile-visit-duration'), s.visit_duration);
  const median = s.visit_duration_median;
  $('tile-visit-duration').title =
    typeof median === 'number' ? `Mean; the median is ${duration(median)}` : '';
  setCount($('tile-page-views'), s.page_views);
  setCount($('tile-events'), s.events);
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

const drawChart = chart($('chart'), $('chart-table'), METRICS);
// The funnel and retention views ask when asked, and again when the range, zone or filters change;
// not on every commit like the panels above (one can read a week of raw events).
const productViews = [setUpFunnel, setUpRetention].map((setUp) => setUp({ api, view: currentView }));
function reloadProductViews() {
  for (const v of productViews) v.reload();
}
const panels = setUpPanels({
  onPick: addFilter,
  // Another tab needs only its own panel reloaded; a failure already shows in the panel.
  onTab: (panel) => void loadPanel(panel).catch(() => {}),
});

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
  $('range').addEventListener('change', (e) =>
    setView({ filters: state.filters, range: e.target.value }, 'push'),
  );
  $('clear-filters').addEventListener('click', () => setView({ filters: [], range: state.range }, 'push'));
  // Back and Forward step through the views (each filter or range change is an entry).
  window.addEventListener('popstate', () => setView(readView(location.search), null));
  tz.addEventListener('change', (e) => {
    state.tz = e.target.value;
    refresh();
    reloadProductViews();
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
renderChips();
refresh();
void follow();
// Also refresh now and then: the range slides with time, and commits made by other processes
// (distributed mode) do not show in this server's stream.
setInterval(refresh, 30_000);
