import type pg from 'pg';
import type { TallyEvent } from '../../src/event/types.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { deleteUser } from '../../src/store/user-deletion.ts';
import { userHashKey } from '../../src/store/user-hash.ts';
import type { Row } from '../lib/report.ts';
import { percentile, round } from '../lib/stats.ts';
import { SITE, type WebDataset } from '../web-dataset.ts';

const SCENARIO = '9. delete user';
/** The heavy user's id (bench/delete-user-lab.ts deletes it too). */
export const USER = 'bench-heavy-user';
const DAY = 86_400_000;
const DESKTOP =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

/**
 * Scenario 9 (issue 22), on scenario 8's database while its `tally query` runs: one user with
 * `heavy` events over the 30 days (visits of 100 events, 40 pages) is written through BatchWriter,
 * then deleted with `deleteUser` (every rollup corrected, tombstone, one version) while a writer
 * keeps sending other users' batches to the same project and a reader keeps asking the summary.
 * Baseline: the same delete as plain SQL without the rollup corrections (dedup keys, raw rows,
 * visits), in a transaction rolled back first. Reports both times, what the writer's batches and
 * the reader's answers took before and during the deletion, and checks the summary afterwards
 * against the raw events.
 */
export async function deleteUserRows(opts: {
  pool: pg.Pool;
  admin: pg.ClientBase;
  tallyUrl: string;
  dataset: WebDataset;
  end: number;
  heavy: number;
  events: number;
  fail: (what: string) => void;
  log: (line: string) => void;
}): Promise<Row[]> {
  const { pool, admin, tallyUrl, dataset, heavy, log } = opts;
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
  log(`delete user: writing ${heavy.toLocaleString('en-US')} events of one user`);
  for (const batch of heavyUser(heavy, dataset.start)) await writer.write({ events: batch });
  await admin.query('ANALYZE tally.events, tally.sessions, tally.rollup_pages, tally.rollup_events');

  await admin.query('BEGIN');
  let t0 = performance.now();
  await admin.query(
    `DELETE FROM tally.event_ids i USING tally.events e
      WHERE e.project = 'default' AND e.user_id = $1 AND i.project = 'default' AND i.event_id = e.event_id`,
    [USER],
  );
  await admin.query(`DELETE FROM tally.events WHERE project = 'default' AND user_id = $1`, [USER]);
  await admin.query(`DELETE FROM tally.sessions WHERE project = 'default' AND user_id = $1`, [USER]);
  const plainMs = performance.now() - t0;
  await admin.query('ROLLBACK');

  const key = await userHashKey(pool, undefined);
  const load = new SideLoad(writer, tallyUrl, opts.end);
  const sides = load.start();
  await new Promise((r) => setTimeout(r, 3_000));
  const started = performance.now();
  t0 = performance.now();
  const deletion = await deleteUser(pool, { project: 'default', userId: USER, actor: 'bench', key });
  const deleteMs = performance.now() - t0;
  const ended = performance.now();
  await new Promise((r) => setTimeout(r, 1_000));
  load.stop();
  await sides;
  if (deletion.events !== heavy)
    opts.fail(`delete user: ${deletion.events} events removed, ${heavy} written`);
  await checkSummary(admin, tallyUrl, opts.end, opts.fail);

  const phase = (s: Sample[], during: boolean) =>
    s.filter((x) => (x.end > started && x.start < ended) === during).map((x) => x.end - x.start);
  const describe = (s: number[]) =>
    s.length === 0
      ? 'none'
      : `p50 ${round(percentile(s, 50), 1)} ms, max ${round(Math.max(...s), 1)} ms (${s.length})`;
  const scope = `a user with ${heavy.toLocaleString('en-US')} events among ${opts.events.toLocaleString('en-US')}`;
  return [
    {
      scenario: SCENARIO,
      metric: `seconds to delete ${scope}: raw rows, keys, visits, every rollup corrected, tombstone (ingest and queries going on)`,
      tally: round(deleteMs / 1000, 2),
      baseline: round(plainMs / 1000, 2),
      baselineName: 'plain SQL delete of keys, raw rows and visits, no rollup corrections',
      unit: 's',
      target: 'seconds, not minutes',
    },
    {
      scenario: `${SCENARIO}, meanwhile`,
      metric: `other users' batches of 200 events to the same project: before the deletion ${describe(phase(load.batches, false))}; during it`,
      tally: round(Math.max(0, ...phase(load.batches, true)), 1),
      unit: 'ms (max)',
      note: `${describe(phase(load.batches, true))}; ${load.failed} failed (retried by a real writer)`,
    },
    {
      scenario: `${SCENARIO}, meanwhile`,
      metric: `uncached summaries of \`tally query\`: before the deletion ${describe(phase(load.answers, false))}; during it`,
      tally: round(Math.max(0, ...phase(load.answers, true)), 1),
      unit: 'ms (max)',
      note: describe(phase(load.answers, true)),
    },
  ];
}

interface Sample {
  start: number;
  end: number;
}

/** Other users' batches and uncached summaries, one at a time each, until stopped. */
class SideLoad {
  readonly batches: Sample[] = [];
  readonly answers: Sample[] = [];
  #stopped = false;
  readonly #writer: BatchWriter;
  readonly #url: string;
  readonly #end: number;

  constructor(writer: BatchWriter, url: string, end: number) {
    this.#writer = writer;
    this.#url = url;
    this.#end = end;
  }

  start(): Promise<unknown> {
    return Promise.all([this.#write(), this.#ask()]);
  }

  stop(): void {
    this.#stopped = true;
  }

  /** Batches that failed (a lock wait past the writer's lock_timeout while the deletion ran). */
  failed = 0;

  async #write(): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      const events = Array.from({ length: 200 }, (_, i) => sideEvent(n, i, this.#end));
      const start = performance.now();
      try {
        await this.#writer.write({ events });
        this.batches.push({ start, end: performance.now() });
      } catch {
        this.failed++;
      }
    }
  }

  async #ask(): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      // A new range each time: never a cached answer.
      const to = this.#end - n * 1_000;
      const url = `${this.#url}/v1/stats/summary?from=${new Date(to - 30 * DAY).toISOString()}&to=${new Date(to).toISOString()}`;
      const start = performance.now();
      const res = await fetch(url);
      await res.text();
      this.answers.push({ start, end: performance.now() });
    }
  }
}

function sideEvent(batch: number, i: number, end: number): TallyEvent {
  const ts = end - 60_000 + i;
  return {
    project: 'default',
    eventId: `bench-side-${batch}-${i}`,
    type: 'page_view',
    userId: `bench-side-${i % 50}`,
    ts,
    receivedAt: ts,
    pageUrl: `${SITE}/side`,
    referrer: null,
    sessionId: null,
    userAgent: DESKTOP,
    country: 'FR',
    service: null,
    properties: null,
  };
}

/** The summary after the deletion equals the raw events' count of visitors over the same range. */
async function checkSummary(
  admin: pg.ClientBase,
  url: string,
  end: number,
  fail: (what: string) => void,
): Promise<void> {
  const from = new Date(end - 30 * DAY - 7);
  const to = new Date(end - 7);
  const res = await fetch(`${url}/v1/stats/summary?from=${from.toISOString()}&to=${to.toISOString()}`);
  const got = (await res.json()) as { visitors: number; events: number };
  const { rows } = await admin.query<{ visitors: number; events: number }>(
    `SELECT count(DISTINCT user_id)::int AS visitors, count(*)::int AS events FROM tally.events
      WHERE project = 'default' AND NOT is_bot AND ts >= $1 AND ts < $2`,
    [from, to],
  );
  if (got.visitors !== rows[0].visitors || got.events !== rows[0].events)
    fail(
      `delete user: summary after the deletion ${JSON.stringify(got)}, raw events say ${JSON.stringify(rows[0])}`,
    );
}

/** `n` events of one user over the 30 days: visits of 100 events 3 s apart, at least 31 min between. */
export function* heavyUser(n: number, start: number): Generator<TallyEvent[]> {
  let batch: TallyEvent[] = [];
  const gap = Math.max(31 * 60_000, Math.floor((30 * DAY) / Math.ceil(n / 100) - 99 * 3_000));
  let t = start;
  for (let i = 0; i < n; i++) {
    if (i > 0) t += i % 100 === 0 ? gap : 3_000;
    batch.push({
      project: 'default',
      eventId: `bench-heavy-${i}`,
      type: i % 5 === 4 ? 'click' : 'page_view',
      userId: USER,
      ts: t,
      receivedAt: t,
      pageUrl: `${SITE}/p/${i % 40}`,
      referrer: null,
      sessionId: null,
      userAgent: DESKTOP,
      country: 'DE',
      service: null,
      properties: null,
    });
    if (batch.length === 2_000) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
