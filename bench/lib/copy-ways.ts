/**
 * The ways bench/copy-lab.ts stores a batch's dedup keys and raw rows (its header says which),
 * the SQL they need, and the per-event columns they take.
 */
import type pg from 'pg';
import { deriveDimensions } from '../../src/event/derive.ts';
import { BinaryCopyRows, copyIn, TextCopyRows, type CopyRows } from './copy-in.ts';

// Raw storage on, no retention: every fresh event is stored raw (write-events.ts sends -Infinity).
const CUTOFF = Number.NEGATIVE_INFINITY;

/** The per-event arrays write-events.ts sends for keys and raw rows, but the project's. */
export interface Columns {
  n: number;
  eventId: string[];
  type: string[];
  userId: string[];
  ts: number[];
  receivedAt: number[];
  bot: boolean[];
  /** The nullable text columns of a raw row, in RAW_TEXT's order. */
  text: Record<(typeof RAW_TEXT)[number], (string | null)[]>;
}

const RAW_TEXT = [
  'page_url', 'referrer', 'session_id', 'service', 'properties', 'user_agent', 'country', 'hostname',
  'path', 'referrer_host', 'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content',
  'channel', 'browser', 'os', 'device',
] as const; // prettier-ignore
export const RAW_COLUMNS = [
  'project',
  'event_id',
  'type',
  'user_id',
  'ts',
  'received_at',
  ...RAW_TEXT,
  'is_bot',
];

export function columns(events: Record<string, unknown>[]): Columns {
  const text = Object.fromEntries(RAW_TEXT.map((c) => [c, [] as (string | null)[]])) as Columns['text'];
  const c: Columns = {
    n: events.length,
    eventId: [],
    type: [],
    userId: [],
    ts: [],
    receivedAt: [],
    bot: [],
    text,
  };
  for (const e of events) {
    const pageUrl = e.page_url as string;
    const referrer = e.referrer as string;
    const d = deriveDimensions({ pageUrl, referrer, userAgent: null });
    c.eventId.push(e.event_id as string);
    c.type.push(e.type as string);
    c.userId.push(e.user_id as string);
    c.ts.push(e.timestamp as number);
    c.receivedAt.push(e.timestamp as number);
    c.bot.push(d.bot);
    const values = [pageUrl, referrer, null, null, null, null, null, d.hostname, d.path, d.referrerHost,
      d.utmSource, d.utmMedium, d.utmCampaign, d.utmTerm, d.utmContent, d.channel, d.browser, d.os, d.device]; // prettier-ignore
    RAW_TEXT.forEach((name, k) => text[name].push(values[k]));
  }
  return c;
}

/** One raw row of tally.events, RAW_COLUMNS, preceded by the event's ordinal when `ordinal`. */
function writeRow(w: CopyRows, c: Columns, i: number, project: string, ordinal: boolean): void {
  w.row(RAW_COLUMNS.length + (ordinal ? 1 : 0));
  if (ordinal) w.int(i + 1);
  w.text(project);
  w.text(c.eventId[i]);
  w.text(c.type[i]);
  w.text(c.userId[i]);
  w.time(c.ts[i]);
  w.time(c.receivedAt[i]);
  for (const name of RAW_TEXT) {
    if (name === 'properties') w.json(c.text[name][i]);
    else w.text(c.text[name][i]);
  }
  w.bool(c.bot[i]);
}

// The two statements of tally.write_events (migration 021) that store keys and raw rows, verbatim
// but for the tombstones' `dropped` (all false, as in nearly every batch).
export const UNNEST_FUNCTION = `
CREATE FUNCTION copylab.unnest_write(
  p_project text[], p_event_id text[], p_type text[], p_ts float8[], p_page_url text[], p_is_bot bool[],
  p_raw_cutoff float8, p_user_id text[], p_received_at float8[], p_referrer text[],
  p_session_id text[], p_service text[], p_properties text[],
  p_user_agent text[], p_country text[], p_hostname text[], p_path text[], p_referrer_host text[],
  p_utm_source text[], p_utm_medium text[], p_utm_campaign text[], p_utm_term text[], p_utm_content text[],
  p_channel text[], p_browser text[], p_os text[], p_device text[], OUT fresh bool[]
) LANGUAGE plpgsql AS $$
DECLARE
  dropped bool[] := array_fill(false, ARRAY[cardinality(p_project)]);
BEGIN
  WITH k AS (
    INSERT INTO tally.event_ids (project, event_id)
    SELECT x.p, x.id
      FROM unnest(p_project, p_event_id) WITH ORDINALITY AS x(p, id, i)
     WHERE NOT dropped[x.i::int4]
    ON CONFLICT DO NOTHING
    RETURNING project, event_id
  )
  SELECT array_agg(k.event_id IS NOT NULL ORDER BY x.i) INTO fresh
    FROM unnest(p_project, p_event_id) WITH ORDINALITY AS x(p, id, i)
    LEFT JOIN k ON k.project = x.p AND k.event_id = x.id;
  IF array_position(fresh, true) IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO tally.events
    (project, event_id, type, user_id, ts, received_at, page_url, referrer, session_id, service, properties,
     user_agent, country, hostname, path, referrer_host, utm_source, utm_medium, utm_campaign, utm_term,
     utm_content, channel, browser, os, device, is_bot)
  SELECT x.p, x.id, x.t, x.u, to_timestamp(x.ts / 1000.0), to_timestamp(x.r / 1000.0), x.pu, x.rf, x.s, x.sv,
         x.pr::jsonb, x.ua, x.co, x.h, x.pa, x.rh, x.us, x.um, x.uc, x.ut, x.ux, x.ch, x.br, x.os, x.dv, x.b
    FROM unnest(p_project, p_event_id, p_type, p_user_id, p_ts, p_received_at,
                p_page_url, p_referrer, p_session_id, p_service, p_properties,
                p_user_agent, p_country, p_hostname, p_path, p_referrer_host, p_utm_source, p_utm_medium,
                p_utm_campaign, p_utm_term, p_utm_content, p_channel, p_browser, p_os, p_device, p_is_bot)
           WITH ORDINALITY AS x(p, id, t, u, ts, r, pu, rf, s, sv, pr,
                                ua, co, h, pa, rh, us, um, uc, ut, ux, ch, br, os, dv, b, i)
   WHERE fresh[x.i::int4] AND x.ts >= p_raw_cutoff;
END
$$`;

// The same two statements reading the batch from the session's staging table.
export const STAGED_FUNCTION = `
CREATE FUNCTION copylab.staged_write(p_raw_cutoff float8, OUT fresh bool[]) LANGUAGE plpgsql AS $$
BEGIN
  WITH k AS (
    INSERT INTO tally.event_ids (project, event_id)
    SELECT s.project, s.event_id FROM pg_temp.copylab_staging s
    ON CONFLICT DO NOTHING
    RETURNING project, event_id
  )
  SELECT array_agg(k.event_id IS NOT NULL ORDER BY s.i) INTO fresh
    FROM pg_temp.copylab_staging s
    LEFT JOIN k ON k.project = s.project AND k.event_id = s.event_id;
  IF array_position(fresh, true) IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO tally.events (${RAW_COLUMNS.join(', ')})
  SELECT ${RAW_COLUMNS.map((c) => `s.${c}`).join(', ')}
    FROM pg_temp.copylab_staging s
   WHERE fresh[s.i] AND s.ts >= to_timestamp(p_raw_cutoff / 1000.0);
END
$$`;

export const STAGING_TABLE = `CREATE TEMP TABLE copylab_staging (i int4, ${RAW_COLUMNS.map(
  (c) =>
    `${c} ${c === 'ts' || c === 'received_at' ? 'timestamptz' : c === 'is_bot' ? 'bool' : c === 'properties' ? 'jsonb' : 'text'}`,
).join(', ')}) ON COMMIT DELETE ROWS`;

const KEYS = `WITH k AS (
    INSERT INTO tally.event_ids (project, event_id)
    SELECT x.p, x.id FROM unnest($1::text[], $2::text[]) AS x(p, id)
    ON CONFLICT DO NOTHING
    RETURNING project, event_id
  )
  SELECT array_agg(k.event_id IS NOT NULL ORDER BY x.i) AS fresh
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(p, id, i)
    LEFT JOIN k ON k.project = x.p AND k.event_id = x.id`;

type Format = 'binary' | 'text';
const rowsOf = (format: Format): CopyRows =>
  format === 'binary' ? new BinaryCopyRows() : new TextCopyRows();

/**
 * Stores one batch's keys and raw rows in `project`; returns the fresh flags. A way of two steps
 * calls `lap` between them, so the backend's CPU time is split there.
 */
export type Way = (client: pg.Client, c: Columns, project: string, lap: () => void) => Promise<boolean[]>;

const unnestWay: Way = async (client, c, project) => {
  const t = c.text;
  const values = [
    new Array<string>(c.n).fill(project), c.eventId, c.type, c.ts, t.page_url, c.bot, CUTOFF, c.userId,
    c.receivedAt, t.referrer, t.session_id, t.service, t.properties, t.user_agent, t.country, t.hostname,
    t.path, t.referrer_host, t.utm_source, t.utm_medium, t.utm_campaign, t.utm_term, t.utm_content,
    t.channel, t.browser, t.os, t.device,
  ]; // prettier-ignore
  const types = [
    'text[]',
    'text[]',
    'text[]',
    'float8[]',
    'text[]',
    'bool[]',
    'float8',
    'text[]',
    'float8[]',
  ];
  const args = values.map((_v, k) => `$${k + 1}::${types[k] ?? 'text[]'}`);
  const { rows } = await client.query<{ fresh: boolean[] }>({
    name: 'copylab-unnest',
    text: `SELECT fresh FROM copylab.unnest_write(${args.join(', ')}) AS fresh`,
    values,
  });
  return rows[0].fresh;
};

function stagedWay(format: Format): Way {
  return async (client, c, project, lap) => {
    const w = rowsOf(format);
    for (let i = 0; i < c.n; i++) writeRow(w, c, i, project, true);
    await client.query('BEGIN');
    await copyIn(client, `COPY copylab_staging FROM STDIN (FORMAT ${format})`, w.end());
    lap();
    const { rows } = await client.query<{ fresh: boolean[] }>({
      name: 'copylab-staged',
      text: 'SELECT fresh FROM copylab.staged_write($1::float8) AS fresh',
      values: [CUTOFF],
    });
    await client.query('COMMIT');
    return rows[0].fresh;
  };
}

function keysThenCopyWay(format: Format): Way {
  return async (client, c, project, lap) => {
    await client.query('BEGIN');
    const { rows } = await client.query<{ fresh: boolean[] }>({
      name: 'copylab-keys',
      text: KEYS,
      values: [new Array<string>(c.n).fill(project), c.eventId],
    });
    const { fresh } = rows[0];
    lap();
    const w = rowsOf(format);
    for (let i = 0; i < c.n; i++) if (fresh[i] && c.ts[i] >= CUTOFF) writeRow(w, c, i, project, false);
    await copyIn(
      client,
      `COPY tally.events (${RAW_COLUMNS.join(', ')}) FROM STDIN (FORMAT ${format})`,
      w.end(),
    );
    await client.query('COMMIT');
    return fresh;
  };
}

/**
 * An upper bound, not a way that keeps the dedup by itself: the keys stored with no ON CONFLICT,
 * by COPY or by a plain INSERT … SELECT FROM unnest, which fails the whole batch on one key
 * already stored (unique_violation); the batch is then written again the keys+copy way. Cheap
 * only while repeated keys are rare (no replay, no retry). Raw rows by binary COPY.
 */
function optimisticWay(keys: 'copy' | 'insert'): Way {
  return async (client, c, project, lap) => {
    await client.query('BEGIN');
    try {
      if (keys === 'insert') {
        await client.query({
          name: 'copylab-plain-keys',
          text: 'INSERT INTO tally.event_ids (project, event_id) SELECT * FROM unnest($1::text[], $2::text[])',
          values: [new Array<string>(c.n).fill(project), c.eventId],
        });
      } else {
        const w = new BinaryCopyRows();
        for (let i = 0; i < c.n; i++) {
          w.row(2);
          w.text(project);
          w.text(c.eventId[i]);
        }
        await copyIn(client, 'COPY tally.event_ids (project, event_id) FROM STDIN (FORMAT binary)', w.end());
      }
    } catch (err) {
      if ((err as { code?: string }).code !== '23505') throw err;
      await client.query('ROLLBACK');
      return keysThenCopyWay('binary')(client, c, project, lap);
    }
    lap();
    const w = new BinaryCopyRows();
    for (let i = 0; i < c.n; i++) if (c.ts[i] >= CUTOFF) writeRow(w, c, i, project, false);
    await copyIn(client, `COPY tally.events (${RAW_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`, w.end());
    await client.query('COMMIT');
    return new Array<boolean>(c.n).fill(true);
  };
}

export const WAYS: [string, Way][] = [
  ['unnest', unnestWay],
  ['staged binary', stagedWay('binary')],
  ['staged text', stagedWay('text')],
  ['keys+copy binary', keysThenCopyWay('binary')],
  ['keys+copy text', keysThenCopyWay('text')],
  ['copy keys, no dedup', optimisticWay('copy')],
  ['insert keys, no dedup', optimisticWay('insert')],
];
