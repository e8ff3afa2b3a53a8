import assert from 'node:assert/strict';
import { sessionize as fixtureSessionize, type WebEvent } from '../query/web-fixtures.ts';
import {
  Reference,
  refMetric,
  refSummary,
  type Bots,
  type Question,
  type RefCounts,
  type RefFilter,
} from '../query/web-reference.ts';
import { getJson } from './embedded-tally.ts';
import { pool } from './oracle.ts';
import { compareC, sessionize, storedVisits, type Visit } from './sessionizer.ts';
import { sessionizerEvent, TIMEOUT_MS, type Generated } from './web-traffic.ts';

/**
 * The expected web analytics answers for generated traffic (./web-traffic.ts), from scratch: the
 * visits by the reference sessionizer over the unique events, the counts by the contract's
 * semantics (test/query/web-reference.ts), and the assertions that compare a running Tally's
 * REST answers and tally.sessions with them.
 */

export const BREAKDOWN_METRICS = ['visitors', 'visits', 'page_views', 'events', 'bounce_rate'];

export class WebOracle {
  readonly events: WebEvent[];
  /** Every visit, bots too (the rows tally.sessions must hold), by the reference sessionizer. */
  readonly visits: Visit[];
  readonly #ref: Reference;

  constructor(generated: readonly Generated[]) {
    this.events = generated.map((g) => g.event);
    this.visits = sessionize(
      this.events.map((e) => sessionizerEvent(e)),
      TIMEOUT_MS,
    );
    // web-reference.ts wants its own visit shape (with members); both sessionizers must agree.
    const withMembers = fixtureSessionize(this.events, TIMEOUT_MS);
    assert.deepEqual(
      withMembers.map((v) => [v.user_id, v.session_key, v.started_at, v.ended_at, v.events]).sort(byTuple),
      this.visits.map((v) => [v.userId, v.sessionKey, v.startedAt, v.endedAt, v.events]).sort(byTuple),
      'the two reference sessionizers agree',
    );
    this.#ref = new Reference(this.events, withMembers);
    for (const v of withMembers) {
      const key = JSON.stringify([v.user_id, v.session_key, v.started_at]);
      for (const e of v.members) this.#visitKey.set(e.event_id, key);
    }
  }

  readonly #visitKey = new Map<string, string>();

  /** How many of this oracle's visits hold events that were in two or more visits of `earlier`. */
  mergedFrom(earlier: WebOracle): number {
    const parts = new Map<string, Set<string>>();
    for (const [id, key] of earlier.#visitKey) {
      const now = this.#visitKey.get(id)!;
      parts.set(now, (parts.get(now) ?? new Set()).add(key));
    }
    return [...parts.values()].filter((p) => p.size > 1).length;
  }

  summary(q: Question) {
    return refSummary(this.#ref.totals(q));
  }

  /** Every row (limit 1000, page 1) of a breakdown with `metrics`, default sort: the first metric desc, then value. */
  breakdown(q: Question, dimension: string, metrics: readonly string[]) {
    const rows = [...this.#ref.groups(q, dimension)]
      .filter(([, c]) => c.events > 0 || c.visits.length > 0)
      .map(([key, c]) => ({ key, value: key ?? '(none)', c, s: refMetric(metrics[0], c) }));
    rows.sort((a, b) => {
      if (a.s !== b.s) {
        if (a.s === null) return 1;
        if (b.s === null) return -1;
        return b.s - a.s;
      }
      if (a.value !== b.value) return a.value < b.value ? -1 : 1;
      return (a.key === null ? 1 : 0) - (b.key === null ? 1 : 0);
    });
    const base = metrics.includes('visitors') ? 'visitors' : metrics[0];
    const total = this.#ref.totals(q);
    const whole = refMetric(base, total);
    const values = (c: RefCounts) => Object.fromEntries(metrics.map((m) => [m, refMetric(m, c)]));
    assert.ok(rows.length <= 1000, 'the suites ask for every row at once');
    return {
      dimension,
      from: new Date(q.from).toISOString(),
      to: new Date(q.to).toISOString(),
      metrics: [...metrics],
      results: rows.map((r) => {
        const part = refMetric(base, r.c);
        return {
          value: r.value,
          ...values(r.c),
          percentage:
            part === null || whole === null || whole === 0 ? null : Math.round((1000 * part) / whole) / 10,
        };
      }),
      total: values(total),
      page: 1,
      limit: 1000,
      has_more: false,
    };
  }
}

const byTuple = (a: unknown[], b: unknown[]) => compareC(JSON.stringify(a), JSON.stringify(b));

const escapeValue = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('|', '\\|');

/** The query string of a question (plus `extra` parameters), in the API's filter syntax. */
export function queryString(q: Question, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams({
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    ...extra,
  });
  if (q.bots !== 'exclude') p.set('bots', q.bots);
  for (const f of q.filters) p.append('filter', `${f.dim}${f.op}${f.values.map(escapeValue).join('|')}`);
  return p.toString();
}

export function question(
  from: number,
  to: number,
  filters: RefFilter[] = [],
  bots: Bots = 'exclude',
): Question {
  return { from, to, filters, bots };
}

/** Asserts Tally's /v1/stats/summary for `q` equals the oracle's. */
export async function assertSummary(
  url: string,
  oracle: WebOracle,
  q: Question,
  what: string,
): Promise<void> {
  const res = await getJson<Record<string, unknown>>(`${url}/v1/stats/summary?${queryString(q)}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const want = oracle.summary(q);
  const got = Object.fromEntries(Object.keys(want).map((k) => [k, res.body[k]]));
  assert.deepEqual(got, want, `summary ${what}: ${queryString(q)}`);
}

/** Asserts Tally's /v1/stats/breakdown of `dimension` for `q` (every row) equals the oracle's. */
export async function assertBreakdown(
  url: string,
  oracle: WebOracle,
  q: Question,
  dimension: string,
  metrics: readonly string[] = BREAKDOWN_METRICS,
): Promise<void> {
  const qs = queryString(q, { dimension, metrics: metrics.join(','), limit: '1000' });
  const res = await getJson<Record<string, unknown>>(`${url}/v1/stats/breakdown?${qs}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, oracle.breakdown(q, dimension, metrics), `breakdown ${qs}`);
}

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** tally.sessions holds exactly the oracle's visits (bots too): the count, then every column. */
export async function assertSessions(db: Queryable, oracle: WebOracle, project = 'default'): Promise<void> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM tally.sessions WHERE project = $1',
    [project],
  );
  assert.equal(rows[0].n, oracle.visits.length, 'SELECT count(*) FROM tally.sessions');
  const stored = await storedVisits(db, project);
  assert.deepEqual(stored, oracle.visits, 'every column of tally.sessions');
}

export interface Sent {
  requests: number;
  accepted: number;
  duplicates: number;
}

/**
 * POSTs `bodies` to /v1/events in requests of random sizes (1..`maxBatch`), as JSON arrays or
 * NDJSON, `concurrency` at a time, with `headers` (an API key); every request must be answered 202
 * without rejections.
 */
export async function sendEvents(
  baseUrls: readonly string[],
  bodies: readonly Record<string, unknown>[],
  random: () => number,
  options: { maxBatch: number; concurrency: number; headers?: Record<string, string> },
): Promise<Sent> {
  const batches: Record<string, unknown>[][] = [];
  for (let i = 0; i < bodies.length;) {
    const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * options.maxBatch);
    batches.push(bodies.slice(i, i + size));
    i += size;
  }
  const sent: Sent = { requests: 0, accepted: 0, duplicates: 0 };
  await pool(
    batches.map((batch, i) => async () => {
      const ndjson = random() < 0.3;
      const res = await fetch(`${baseUrls[i % baseUrls.length]}/v1/events`, {
        method: 'POST',
        headers: { ...options.headers, 'content-type': ndjson ? 'application/x-ndjson' : 'application/json' },
        body: ndjson ? batch.map((b) => JSON.stringify(b)).join('\n') : JSON.stringify(batch),
      });
      const json = (await res.json()) as { accepted: number; duplicates?: number; rejected?: unknown };
      assert.equal(res.status, 202, JSON.stringify(json).slice(0, 300));
      assert.equal(json.rejected, undefined, JSON.stringify(json.rejected));
      sent.requests++;
      sent.accepted += json.accepted;
      sent.duplicates += json.duplicates ?? 0;
    }),
    options.concurrency,
  );
  return sent;
}

/** Sends each event as a browser beacon: text/plain to /v1/collect, the user agent in the header only. */
export async function sendBeacons(baseUrl: string, beacons: readonly Generated[], concurrency: number) {
  await pool(
    beacons.map((g) => async () => {
      assert.equal(g.body.user_agent, undefined);
      const res = await fetch(`${baseUrl}/v1/collect`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain;charset=UTF-8', 'user-agent': g.collectUserAgent ?? '' },
        body: JSON.stringify(g.body),
      });
      assert.equal(res.status, 202, await res.text());
    }),
    concurrency,
  );
}
