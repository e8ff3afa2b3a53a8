import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TallyError } from '../../../src/errors/tally-error.ts';
import { Layers } from '../../../src/query/columnar/layers.ts';
import { ProductService, parseWindow } from '../../../src/query/product/product-service.ts';
import { BASE, HOUR, MINUTE, modelOf, TIMEOUT } from '../columnar-arbitraries.ts';
import { sessionize, webEventOf } from '../web-fixtures.ts';

/** Issue 21's checks before any engine runs: every bad part named, and the limits. */

const DAY = 24 * HOUR;
const NOW = BASE + 10 * DAY;

function service(opts: { layers?: Layers; cutoff?: number; stored?: boolean; fallback?: boolean } = {}) {
  const reads: number[] = [];
  const product = new ProductService({
    scoped: { layers: () => Promise.resolve(opts.layers) },
    raw: { stored: opts.stored ?? true, cutoff: () => opts.cutoff ?? Number.NEGATIVE_INFINITY },
    readModel: (_project, range) => {
      reads.push(range.fromMs);
      return Promise.resolve(opts.fallback === true ? modelOf([], []) : undefined);
    },
    maxScanEvents: 1000,
    now: () => NOW,
  });
  return { product, reads };
}

const twoSteps = [{ event_type: 'page_view' }, { event_type: 'signup' }];

function rejects(run: () => unknown, code: string, field?: string): void {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof TallyError, String(err));
    assert.equal(err.code, code, err.message);
    if (field !== undefined) assert.equal(err.details?.[0]?.field, field, err.message);
    return;
  }
  assert.fail(`expected ${code}`);
}

test('a funnel names the wrong part: steps, a step, its filter, the window, the breakdown', () => {
  const { product } = service();
  rejects(() => product.checkFunnel({ steps: [{ event_type: 'a' }] }), 'TALLY_INVALID_QUERY', 'steps');
  rejects(
    () => product.checkFunnel({ steps: Array.from({ length: 11 }, () => ({ event_type: 'a' })) }),
    'TALLY_INVALID_QUERY',
    'steps',
  );
  rejects(() => product.checkFunnel({ steps: [{ event_type: 'a' }, {}] }), 'TALLY_INVALID_QUERY', 'steps[1]');
  rejects(
    () => product.checkFunnel({ steps: [{ event_type: 'a' }, { filter: ['country==DE', 'colour==red'] }] }),
    'TALLY_INVALID_QUERY',
    'steps[1].filter[1]',
  );
  rejects(() => product.checkFunnel({ steps: twoSteps, window: '7x' }), 'TALLY_INVALID_QUERY', 'window');
  rejects(() => product.checkFunnel({ steps: twoSteps, window: '91d' }), 'TALLY_INVALID_QUERY', 'window');
  rejects(
    () => product.checkFunnel({ steps: twoSteps, breakdown: 'colour' }),
    'TALLY_INVALID_QUERY',
    'breakdown',
  );
  rejects(
    () => product.checkFunnel({ steps: twoSteps, filter: ['nope'] }),
    'TALLY_INVALID_QUERY',
    'filter[0]',
  );
  rejects(
    () => product.checkFunnel({ steps: twoSteps, count_by: 'device' }),
    'TALLY_INVALID_QUERY',
    'count_by',
  );
  rejects(() => product.checkFunnel({ steps: twoSteps, tz: 'Mars/Olympus' }), 'TALLY_INVALID_QUERY', 'tz');
});

test('windows: minutes to 90 days, inclusive of both ends', () => {
  assert.equal(parseWindow('1m'), MINUTE);
  assert.equal(parseWindow('30m'), 30 * MINUTE);
  assert.equal(parseWindow('12h'), 12 * HOUR);
  assert.equal(parseWindow('90d'), 90 * DAY);
  assert.equal(parseWindow('2w'), 14 * DAY);
  for (const bad of ['0m', '', '7', 'd', '-1d', '1.5d', '13w', '91d', '1 d', '01d']) {
    assert.throws(() => parseWindow(bad), TallyError, bad);
  }
});

test('retention and paths name their wrong parameter', () => {
  const { product } = service();
  rejects(() => product.checkRetention({ period: 'year' }), 'TALLY_INVALID_QUERY', 'period');
  rejects(() => product.checkRetention({ period: 'month', periods: 25 }), 'TALLY_INVALID_QUERY', 'periods');
  rejects(() => product.checkRetention({ period: 'day', periods: 0 }), 'TALLY_INVALID_QUERY', 'periods');
  rejects(() => product.checkPaths({}), 'TALLY_INVALID_QUERY', 'anchor');
  rejects(() => product.checkPaths({ anchor: '/', depth: 4 }), 'TALLY_INVALID_QUERY', 'depth');
  rejects(() => product.checkPaths({ anchor: '/', by: 'country' }), 'TALLY_INVALID_QUERY', 'by');
  rejects(() => product.checkPaths({ anchor: '/', direction: 'up' }), 'TALLY_INVALID_QUERY', 'direction');
});

test('without the read model, too many raw events: TALLY_QUERY_TOO_EXPENSIVE before reading', async () => {
  const { product, reads } = service();
  const q = product.checkPaths({ anchor: '/', from: String(BASE), to: String(BASE + DAY) });
  await assert.rejects(q.answer('p'), (err: unknown) => {
    assert.ok(err instanceof TallyError);
    assert.equal(err.code, 'TALLY_QUERY_TOO_EXPENSIVE');
    assert.equal(err.statusCode, 422);
    return true;
  });
  assert.deepEqual(reads, [BASE]);
});

test('raw retention: the answer says which part of the range it covers; none at all is refused', async () => {
  const cutoff = BASE + 3 * DAY;
  const { product, reads } = service({ cutoff, fallback: true });
  const answer = await product
    .checkPaths({ anchor: '/', from: String(BASE), to: String(BASE + 5 * DAY) })
    .answer('p');
  assert.equal(answer.covers.from, new Date(cutoff).toISOString());
  assert.equal(answer.covers.to, new Date(BASE + 5 * DAY).toISOString());
  assert.equal(answer.from, new Date(BASE).toISOString());
  assert.deepEqual(reads, [cutoff]);
  // Retention judges first seen over every kept event, from the cutoff.
  const r = await product
    .checkRetention({ from: String(BASE), to: String(BASE + 5 * DAY), period: 'day' })
    .answer('p');
  assert.equal(r.first_seen_since, new Date(cutoff).toISOString());
  rejects(
    () => product.checkPaths({ anchor: '/', from: String(BASE), to: String(BASE + 2 * DAY) }),
    'TALLY_RAW_UNAVAILABLE',
    'from',
  );
  const none = service({ stored: false, fallback: true });
  rejects(() => none.product.checkPaths({ anchor: '/' }), 'TALLY_RAW_UNAVAILABLE', 'from');
});

test('the read model answers when it can: nothing read from PostgreSQL', async () => {
  const layers = new Layers(modelOf([], []));
  const { product, reads } = service({ layers });
  const a = await product.checkFunnel({ steps: twoSteps }).answer('p');
  assert.deepEqual(reads, []);
  assert.deepEqual(
    a.steps.map((s) => s.count),
    [0, 0],
  );
  assert.equal(a.window_seconds, 86_400);
  assert.equal(a.from, new Date(NOW - 7 * DAY).toISOString());
});

test('retention judges first seen from the raw window whichever layer holds the user', async () => {
  const cutoff = BASE + 3 * DAY;
  const event = (user: string, ts: number, i: number) => webEventOf({ event_id: `e${i}`, user_id: user, ts });
  // A base loaded before the cutoff moved still holds a's day-1 event; b's rows are a delta's.
  const events = [event('a', BASE + DAY, 0), event('a', BASE + 4 * DAY, 1)];
  const layers = new Layers(modelOf(events, sessionize(events, TIMEOUT)));
  const delta = [event('b', BASE + 4 * DAY + HOUR, 2)];
  layers.push(modelOf(delta, sessionize(delta, TIMEOUT)), ['b']);
  const { product } = service({ layers, cutoff });
  const q = { from: String(cutoff), to: String(BASE + 6 * DAY), period: 'day', periods: '2' };
  const a = await product.checkRetention(q).answer('p');
  assert.deepEqual(
    a.cohorts.map((c) => [c.date, c.users]),
    [
      ['2026-01-08', 0],
      ['2026-01-09', 2],
      ['2026-01-10', 0],
    ],
  );
});

test('cache keys hold the asked range (echoed in the answer) and the covered part', () => {
  const { product } = service({ cutoff: BASE + 3 * DAY });
  const to = String(BASE + 5 * DAY);
  const ask = (from: number) => [
    product.checkPaths({ anchor: '/', from: String(from), to }).key,
    product.checkFunnel({ steps: twoSteps, from: String(from), to }).key,
    product.checkRetention({ from: String(from), to }).key,
  ];
  const [early, later] = [ask(BASE), ask(BASE + DAY)];
  // Both start before the raw window: the same part covered, other ranges asked.
  for (let i = 0; i < 3; i++) assert.notDeepEqual(early[i], later[i]);
});
