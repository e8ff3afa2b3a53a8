import type pg from 'pg';
import type { TallyEvent } from '../event/types.ts';
import type { KnownUserRows } from './known-user-rows.ts';
import { LEVELS } from './levels.ts';
import { rollupUserArgs } from './rollup-writes.ts';
import { SqlParams } from './sql-params.ts';

export interface StoredEvents {
  /** For each of the events given: true when its key was new, so it was stored and counted now. */
  fresh: boolean[];
  /** The new data version of each project that got events. */
  versions: Map<string, number>;
  /** The rollup_users rows sent, for `known.remember` once the transaction has committed. */
  sentUserRows: string[];
}

/**
 * Stores `events` (unique by (project, event_id), sorted by it: see dedupeWithinBatch) with ONE
 * call of tally.write_events (migration 009): their dedup keys, the raw rows of those whose key
 * was new and whose time is at or after `rawCutoff` (undefined: raw storage off), and the rollups
 * of those. One round trip; inside an open transaction it joins it, alone it is its own.
 *
 * Named: parsed and planned once per connection instead of once per batch. TRICKY: behind
 * PgBouncer in transaction mode this needs PgBouncer ≥ 1.21 with max_prepared_statements set.
 */
export async function writeEvents(
  client: pg.ClientBase,
  events: readonly TallyEvent[],
  rawCutoff: number | undefined,
  numbers: ReadonlyMap<string, number>,
  known: KnownUserRows,
): Promise<StoredEvents> {
  const rollups = rollupUserArgs(events, numbers, known);
  const { users, bits } = rollups;
  const raw = rawCutoff === undefined ? undefined : rawColumns(events);
  // [parameter of tally.write_events, value, SQL type]
  const args: [string, unknown, string][] = [
    ['p_levels', LEVELS.map((l) => l.level), 'int2[]'],
    ['p_level_ms', LEVELS.map((l) => l.ms), 'float8[]'],
    ['p_project', events.map((e) => e.project), 'text[]'],
    ['p_event_id', events.map((e) => e.eventId), 'text[]'],
    ['p_type', events.map((e) => e.type), 'text[]'],
    ['p_ts', events.map((e) => e.ts), 'float8[]'],
    ['p_page_url', events.map((e) => e.pageUrl), 'text[]'],
    ['p_raw_cutoff', rawCutoff ?? null, 'float8'],
    ['p_user_id', raw?.userId ?? null, 'text[]'],
    ['p_received_at', raw?.receivedAt ?? null, 'float8[]'],
    ['p_referrer', raw?.referrer ?? null, 'text[]'],
    ['p_session_id', raw?.sessionId ?? null, 'text[]'],
    ['p_service', raw?.service ?? null, 'text[]'],
    ['p_properties', raw?.properties ?? null, 'text[]'],
    ['p_users_project', users.project, 'text[]'],
    ['p_users_level', users.level, 'int2[]'],
    ['p_users_bucket', users.bucket, 'float8[]'],
    ['p_users_user_id', users.userId, 'text[]'],
    ['p_bits_project', bits.project, 'text[]'],
    ['p_bits_level', bits.level, 'int2[]'],
    ['p_bits_bucket', bits.bucket, 'float8[]'],
    ['p_bits_chunk', bits.chunk, 'int4[]'],
    ['p_bits_hex', bits.hex, 'text[]'],
  ];
  const p = new SqlParams();
  const named = args.map(([name, value, type]) => `${name} => ${p.add(value, type)}`);
  const text = `SELECT fresh, projects, versions FROM tally.write_events(${named.join(', ')})`;
  const { rows } = await client.query<{ fresh: boolean[]; projects: string[]; versions: string[] }>({
    name: 'tally-write-events',
    text,
    values: p.values,
  });
  const { fresh, projects, versions } = rows[0];
  return {
    fresh,
    versions: new Map(projects.map((project, i) => [project, Number(versions[i])])),
    sentUserRows: rollups.sentUserRows,
  };
}

/** The columns only raw rows need, one array each. */
function rawColumns(events: readonly TallyEvent[]) {
  const n = events.length;
  const out = {
    userId: new Array<string>(n),
    receivedAt: new Array<number>(n),
    referrer: new Array<string | null>(n),
    sessionId: new Array<string | null>(n),
    service: new Array<string | null>(n),
    properties: new Array<string | null>(n),
  };
  for (let i = 0; i < n; i++) {
    const e = events[i];
    out.userId[i] = e.userId;
    out.receivedAt[i] = e.receivedAt;
    out.referrer[i] = e.referrer;
    out.sessionId[i] = e.sessionId;
    out.service[i] = e.service;
    out.properties[i] = e.properties;
  }
  return out;
}
