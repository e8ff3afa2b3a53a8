import type pg from 'pg';
import { bumpDataVersions } from '../../src/store/data-versions.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { postJson } from '../helpers/embedded-tally.ts';

/**
 * Events with the issue-20 dimensions, stored the way the finished pipeline stores them, without
 * depending on it: non-bot events go through `POST /v1/events` (so the rollups count them), then
 * their dimension columns are set by SQL; bot events (which no rollup holds) are inserted raw;
 * the visits come from the reference sessionizer below, replacing whatever the writer made.
 */
export interface WebEvent {
  event_id: string;
  user_id: string;
  type: string;
  ts: number;
  session_id: string | null;
  properties: Record<string, string> | null;
  path: string | null;
  hostname: string | null;
  referrer_host: string | null;
  channel: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  utm_campaign: string | null;
  utm_term: string | null;
  utm_content: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
  country: string | null;
  is_bot: boolean;
}

export interface Visit {
  user_id: string;
  session_key: string;
  started_at: number;
  ended_at: number;
  events: number;
  page_views: number;
  entry_page: string | null;
  exit_page: string | null;
  is_bot: boolean;
  /** The visit's own dimension columns: those of its first event. */
  first: WebEvent;
  members: WebEvent[];
}

export const VISIT_COLUMNS = [
  'hostname',
  'referrer_host',
  'channel',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'utm_term',
  'utm_content',
  'browser',
  'os',
  'device',
  'country',
] as const;

const DIM_COLUMNS = [
  'path',
  'hostname',
  'referrer_host',
  'channel',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'utm_term',
  'utm_content',
  'browser',
  'os',
  'device',
  'country',
] as const;

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * A human page view on example.com's `/` from a desktop Firefox in the US, direct, with no session
 * id or properties: the plain event most hand-written tests start from; `fields` change any of it.
 */
export function webEventOf(
  fields: Partial<WebEvent> & Pick<WebEvent, 'event_id' | 'user_id' | 'ts'>,
): WebEvent {
  return {
    type: 'page_view',
    session_id: null,
    properties: null,
    path: '/',
    hostname: 'example.com',
    referrer_host: null,
    channel: 'Direct',
    utm_source: null,
    utm_medium: null,
    utm_campaign: null,
    utm_term: null,
    utm_content: null,
    browser: 'Firefox',
    os: 'Linux',
    device: 'desktop',
    country: 'US',
    is_bot: false,
    ...fields,
  };
}

/**
 * The contract's sessionizer, written from its text: explicit session ids make one visit per
 * (user, id); the rest split on gaps longer than the timeout. Ties on time: event_id order.
 */
export function sessionize(events: readonly WebEvent[], timeoutMs: number): Visit[] {
  const groups = new Map<string, WebEvent[]>();
  for (const e of events) {
    const k = JSON.stringify([e.user_id, e.session_id ?? '']);
    groups.set(k, [...(groups.get(k) ?? []), e]);
  }
  const visits: Visit[] = [];
  for (const list of groups.values()) {
    list.sort((a, b) => a.ts - b.ts || byCodeUnits(a.event_id, b.event_id));
    let run: WebEvent[] = [];
    const flush = () => {
      if (run.length > 0) visits.push(visitOf(run));
      run = [];
    };
    for (const e of list) {
      const last = run.at(-1);
      if (last !== undefined && e.session_id === null && e.ts - last.ts > timeoutMs) flush();
      run.push(e);
    }
    flush();
  }
  return visits;
}

function visitOf(run: WebEvent[]): Visit {
  const views = run.filter((e) => e.type === 'page_view');
  return {
    user_id: run[0].user_id,
    session_key: run[0].session_id ?? '',
    started_at: run[0].ts,
    ended_at: run.at(-1)!.ts,
    events: run.length,
    page_views: views.length,
    entry_page: views[0]?.path ?? null,
    exit_page: views.at(-1)?.path ?? null,
    is_bot: run.some((e) => e.is_bot),
    first: run[0],
    members: run,
  };
}

/** Stores the events and their visits (see the file comment). */
export async function storeWebEvents(
  url: string,
  pool: pg.Pool,
  events: readonly WebEvent[],
  visits: readonly Visit[],
) {
  const humans = events.filter((e) => !e.is_bot);
  for (let i = 0; i < humans.length; i += 500) {
    const body = humans.slice(i, i + 500).map((e) => ({
      event_id: e.event_id,
      type: e.type,
      user_id: e.user_id,
      timestamp: new Date(e.ts).toISOString(),
      page_url: e.path === null ? undefined : `https://${e.hostname ?? 'example.com'}${e.path}`,
      session_id: e.session_id ?? undefined,
      properties: e.properties ?? undefined,
    }));
    const res = await postJson(`${url}/v1/events`, body);
    if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  await new RawPartitions(pool, undefined).ensure(
    new Set(events.map((e) => Math.floor(e.ts / 86_400_000) * 86_400_000)),
  );
  const bots = events.filter((e) => e.is_bot);
  const col = (name: keyof WebEvent, list: readonly WebEvent[]) => list.map((e) => e[name]);
  const dims = DIM_COLUMNS.map((_, i) => `$${i + 2}::text[]`).join(', ');
  await pool.query(
    `UPDATE tally.events e SET ${DIM_COLUMNS.map((c) => `${c} = d.${c}`).join(', ')}, is_bot = false
       FROM unnest($1::text[], ${dims}) AS d(event_id, ${DIM_COLUMNS.join(', ')})
      WHERE e.project = 'default' AND e.event_id = d.event_id`,
    [col('event_id', humans), ...DIM_COLUMNS.map((c) => col(c, humans))],
  );
  if (bots.length > 0) {
    const base = ['event_id', 'type', 'user_id', 'session_id'] as const;
    await pool.query(
      `INSERT INTO tally.events (project, ts, received_at, properties, page_url, is_bot, ${[...base, ...DIM_COLUMNS].join(', ')})
       SELECT 'default', to_timestamp(t / 1000), to_timestamp(t / 1000), p::jsonb, u, true, ${[...base, ...DIM_COLUMNS].join(', ')}
         FROM unnest($1::float8[], $2::text[], $3::text[], ${[...base, ...DIM_COLUMNS].map((_, i) => `$${i + 4}::text[]`).join(', ')})
           AS d(t, p, u, ${[...base, ...DIM_COLUMNS].join(', ')})`,
      [
        col('ts', bots),
        bots.map((e) => (e.properties === null ? null : JSON.stringify(e.properties))),
        bots.map((e) => (e.path === null ? null : `https://${e.hostname ?? 'example.com'}${e.path}`)),
        ...[...base, ...DIM_COLUMNS].map((c) => col(c, bots)),
      ],
    );
  }
  const users = [...new Set(events.map((e) => e.user_id))];
  await pool.query(`DELETE FROM tally.sessions WHERE project = 'default' AND user_id = ANY($1)`, [users]);
  await replaceVisits(pool, visits);
  await noteChanged(pool, users);
}

/**
 * Tells the readers about the rows written here around the writer, as tally.write_events does
 * for its own: a new data version (the cache) with a change-feed row naming the users (the
 * columnar read model catches up on them, migration 018).
 */
async function noteChanged(pool: pg.Pool, users: readonly string[]) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await bumpDataVersions(client, ['default']);
    await client.query(
      `INSERT INTO tally.model_changes (project, version, user_ids)
       SELECT project, version, $1 FROM tally.data_versions WHERE project = 'default'`,
      [users],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

async function replaceVisits(pool: pg.Pool, visits: readonly Visit[]) {
  const v = (f: (x: Visit) => unknown) => visits.map(f);
  await pool.query(
    `INSERT INTO tally.sessions (project, user_id, session_key, started_at, ended_at, events, page_views,
        entry_page, exit_page, is_bot, ${VISIT_COLUMNS.join(', ')})
     SELECT 'default', u, k, to_timestamp(s / 1000), to_timestamp(x / 1000), n, pv, en, ex, b, ${VISIT_COLUMNS.join(', ')}
       FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::int4[], $6::int4[], $7::text[], $8::text[],
                   $9::bool[], ${VISIT_COLUMNS.map((_, i) => `$${i + 10}::text[]`).join(', ')})
         AS d(u, k, s, x, n, pv, en, ex, b, ${VISIT_COLUMNS.join(', ')})`,
    [
      v((x) => x.user_id),
      v((x) => x.session_key),
      v((x) => x.started_at),
      v((x) => x.ended_at),
      v((x) => x.events),
      v((x) => x.page_views),
      v((x) => x.entry_page),
      v((x) => x.exit_page),
      v((x) => x.is_bot),
      ...VISIT_COLUMNS.map((c) => v((x) => x.first[c])),
    ],
  );
}
