import type pg from 'pg';
import { deriveDimensionsMemo, type DerivedDimensions } from '../event/derive.ts';
import type { TallyEvent } from '../event/types.ts';
import type { KnownRows, KnownUserRows } from './known-user-rows.ts';
import { LEVELS } from './levels.ts';
import { rollupUserArgs, writtenUserRows } from './rollup-writes.ts';
import { sessionTimeoutError } from './sessions-store.ts';
import { SqlParams } from './sql-params.ts';

/** What the writer derives from each event: src/event/derive.ts's deriveDimensions (through its memo). */
export type Derive = (e: TallyEvent) => Readonly<DerivedDimensions>;

export interface StoredEvents {
  /** For each of the events given: true when its key was new, so it was stored and counted now. */
  fresh: boolean[];
  /** For each of the events given: true when its user was deleted (a tombstone), so it was dropped and counted there. */
  dropped: boolean[];
  /** The new data version of each project that got events. */
  versions: Map<string, number>;
  /** The (bucket, user) rows sent whose users are recorded once the transaction has committed, for `known.remember`. */
  userRows: KnownRows;
  /** For each of the events given: true when deriveDimensions found it a bot. */
  bot: boolean[];
}

/**
 * Stores `events` (unique by (project, event_id), sorted by it: see dedupeWithinBatch) with ONE
 * call of tally.write_events (migration 021): it drops the events of deleted users (`hashes`:
 * each user id's keyed hash, user-hash.ts, which their tombstones hold) and counts them there; of
 * the others, their dedup keys, the raw rows of those whose key was new and whose time is at or
 * after `rawCutoff` (undefined: raw storage off) with the dimensions derived from each
 * (src/event/derive.ts), the rollups of those that are not bots, and the visits (sessions, with
 * `sessionTimeoutMs`) the raw rows touch, and the change feed's rows (tally.model_changes,
 * migration 018). One round trip; inside an open transaction it joins it, alone it is its own.
 *
 * Named: parsed and planned once per connection instead of once per batch. TRICKY: behind
 * PgBouncer in transaction mode this needs PgBouncer ≥ 1.21 with max_prepared_statements set.
 */
export async function writeEvents(
  client: pg.ClientBase,
  events: readonly TallyEvent[],
  rawCutoff: number | undefined,
  numbers: ReadonlyMap<string, number | null>,
  known: KnownUserRows,
  sessionTimeoutMs: number,
  hashes: ReadonlyMap<string, Buffer>,
  derive: Derive = deriveDimensionsMemo,
): Promise<StoredEvents> {
  const cols = eventColumns(events, rawCutoff !== undefined, derive);
  const userHashes = hashArgs(events, hashes);
  const users = rollupUserArgs(events, numbers, known, cols.bot);
  const raw = cols.raw;
  // [parameter of tally.write_events, value, SQL type]
  const args: [string, unknown, string][] = [
    ['p_levels', LEVELS.map((l) => l.level), 'int2[]'],
    ['p_level_ms', LEVELS.map((l) => l.ms), 'float8[]'],
    ['p_project', cols.project, 'text[]'],
    ['p_event_id', cols.eventId, 'text[]'],
    ['p_type', cols.type, 'text[]'],
    ['p_ts', cols.ts, 'float8[]'],
    ['p_page_url', cols.pageUrl, 'text[]'],
    ['p_is_bot', cols.bot, 'bool[]'],
    ['p_projects', [...new Set(cols.project)], 'text[]'],
    ['p_user_hash', userHashes.hash, 'bytea[]'],
    ['p_user_hash_of', userHashes.of, 'int4[]'],
    ['p_raw_cutoff', rawCutoff ?? null, 'float8'],
    ['p_user_id', raw?.userId ?? null, 'text[]'],
    ['p_received_at', raw?.receivedAt ?? null, 'float8[]'],
    ['p_referrer', raw?.referrer ?? null, 'text[]'],
    ['p_session_id', raw?.sessionId ?? null, 'text[]'],
    ['p_service', raw?.service ?? null, 'text[]'],
    ['p_properties', raw?.properties ?? null, 'text[]'],
    ['p_user_agent', raw?.userAgent ?? null, 'text[]'],
    ['p_country', raw?.country ?? null, 'text[]'],
    ['p_hostname', raw?.hostname ?? null, 'text[]'],
    ['p_path', raw?.path ?? null, 'text[]'],
    ['p_referrer_host', raw?.referrerHost ?? null, 'text[]'],
    ['p_utm_source', raw?.utmSource ?? null, 'text[]'],
    ['p_utm_medium', raw?.utmMedium ?? null, 'text[]'],
    ['p_utm_campaign', raw?.utmCampaign ?? null, 'text[]'],
    ['p_utm_term', raw?.utmTerm ?? null, 'text[]'],
    ['p_utm_content', raw?.utmContent ?? null, 'text[]'],
    ['p_channel', raw?.channel ?? null, 'text[]'],
    ['p_browser', raw?.browser ?? null, 'text[]'],
    ['p_os', raw?.os ?? null, 'text[]'],
    ['p_device', raw?.device ?? null, 'text[]'],
    ['p_timeout_ms', sessionTimeoutMs, 'float8'],
    ['p_users_project', users.project, 'text[]'],
    ['p_users_level', users.level, 'int2[]'],
    ['p_users_bucket', users.bucket, 'float8[]'],
    ['p_users_num', users.num, 'int4[]'],
    ['p_users_from', users.from, 'int4[]'],
    ['p_users_to', users.to, 'int4[]'],
    ['p_users_event', users.event, 'int4[]'],
  ];
  const p = new SqlParams();
  const at = new Map(args.map(([name, value, type]) => [name, p.add(value, type)]));
  const named = [...at].map(([name, placeholder]) => `${name} => ${placeholder}`);
  // A misspelt name stays a bare identifier, so the statement fails loudly (no such column).
  const ref = (name: string) => at.get(name) ?? name;
  // The change feed (migration 018) in the same statement, so in the batch's transaction even in
  // autocommit: one row per version bumped, listing the users of the fresh events stored raw, by
  // write_events' own condition for a raw row (a NULL cutoff, raw storage off, matches none). A
  // dropped event is never fresh, so a deleted user is never listed.
  // TRICKY: PostgreSQL runs a data-modifying WITH to completion though the final SELECT never
  // reads it; `w` is referenced twice, so it is materialised and write_events runs once.
  const text = `WITH w AS (SELECT fresh, projects, versions, dropped FROM tally.write_events(${named.join(', ')})),
    f AS (
      INSERT INTO tally.model_changes (project, version, user_ids)
      SELECT v.p, v.v, coalesce(u.ids, '{}')
        FROM w CROSS JOIN unnest(w.projects, w.versions) AS v(p, v)
        LEFT JOIN (
          SELECT x.p, array_agg(DISTINCT x.u) AS ids
            FROM w CROSS JOIN unnest(${ref('p_project')}, ${ref('p_user_id')}, ${ref('p_ts')})
                 WITH ORDINALITY AS x(p, u, ts, i)
           WHERE w.fresh[x.i::int4] AND x.ts >= ${ref('p_raw_cutoff')}
           GROUP BY x.p
        ) AS u ON u.p = v.p
    )
    SELECT fresh, projects, versions, dropped FROM w`;
  // A session timeout other than the one the visits were built with is a configuration error,
  // not a database one: TALLY_CONFIG_INVALID, never retried (migration 011).
  const { rows } = await client
    .query<{ fresh: boolean[]; projects: string[]; versions: string[]; dropped: boolean[] }>({
      name: 'tally-write-events',
      text,
      values: p.values,
    })
    .catch((err: unknown) => {
      throw sessionTimeoutError(err);
    });
  const { fresh, projects, versions, dropped } = rows[0];
  return {
    fresh,
    dropped,
    versions: new Map(projects.map((project, i) => [project, Number(versions[i])])),
    userRows: writtenUserRows(users, fresh),
    bot: cols.bot,
  };
}

/**
 * The users' hashes as tally.write_events takes them (migration 021): each distinct user's once
 * (`hash`), and for each event the 1-based ordinal of its user's there (`of`).
 */
function hashArgs(events: readonly TallyEvent[], hashes: ReadonlyMap<string, Buffer>) {
  const ordinal = new Map<string, number>();
  const hash: Buffer[] = [];
  const of = new Array<number>(events.length);
  for (let i = 0; i < events.length; i++) {
    const userId = events[i].userId;
    let k = ordinal.get(userId);
    if (k === undefined) {
      const h = hashes.get(userId);
      if (h === undefined) throw new Error(`user ${userId} of project ${events[i].project} has no hash`);
      k = hash.push(h);
      ordinal.set(userId, k);
    }
    of[i] = k;
  }
  return { hash, of };
}

/**
 * The per-event arrays of tally.write_events, in one pass over the batch, deriving each event's
 * dimensions once: the columns every event sends (its key, and what the rollups need: bots are
 * left out of them), and with raw storage on the columns only raw rows need.
 */
function eventColumns(events: readonly TallyEvent[], withRaw: boolean, derive: Derive) {
  const n = events.length;
  const project = new Array<string>(n);
  const eventId = new Array<string>(n);
  const type = new Array<string>(n);
  const ts = new Array<number>(n);
  const pageUrl = new Array<string | null>(n);
  const bot = new Array<boolean>(n);
  const raw = withRaw ? rawArrays(n) : undefined;
  for (let i = 0; i < n; i++) {
    const e = events[i];
    const d = derive(e);
    project[i] = e.project;
    eventId[i] = e.eventId;
    type[i] = e.type;
    ts[i] = e.ts;
    pageUrl[i] = e.pageUrl;
    bot[i] = d.bot;
    if (raw === undefined) continue;
    raw.userId[i] = e.userId;
    raw.receivedAt[i] = e.receivedAt;
    raw.referrer[i] = e.referrer;
    raw.sessionId[i] = e.sessionId;
    raw.service[i] = e.service;
    raw.properties[i] = e.properties;
    raw.userAgent[i] = e.userAgent;
    raw.country[i] = e.country;
    raw.hostname[i] = d.hostname;
    raw.path[i] = d.path;
    raw.referrerHost[i] = d.referrerHost;
    raw.utmSource[i] = d.utmSource;
    raw.utmMedium[i] = d.utmMedium;
    raw.utmCampaign[i] = d.utmCampaign;
    raw.utmTerm[i] = d.utmTerm;
    raw.utmContent[i] = d.utmContent;
    raw.channel[i] = d.channel;
    raw.browser[i] = d.browser;
    raw.os[i] = d.os;
    raw.device[i] = d.device;
  }
  return { project, eventId, type, ts, pageUrl, bot, raw };
}

function rawArrays(n: number) {
  const text = () => new Array<string | null>(n);
  return {
    userId: new Array<string>(n),
    receivedAt: new Array<number>(n),
    referrer: text(),
    sessionId: text(),
    service: text(),
    properties: text(),
    userAgent: text(),
    country: text(),
    hostname: text(),
    path: text(),
    referrerHost: text(),
    utmSource: text(),
    utmMedium: text(),
    utmCampaign: text(),
    utmTerm: text(),
    utmContent: text(),
    channel: text(),
    browser: text(),
    os: text(),
    device: text(),
  };
}
