import type pg from 'pg';
import type { Logger } from 'pino';
import { deriveDimensions } from '../event/derive.ts';
import { TallyError } from '../errors/tally-error.ts';
import { createPool } from './pool.ts';
import { rebuildSessions } from './sessions-store.ts';

// Any constant works; it only has to be the same for every Tally process on a database.
const BACKFILL_LOCK_KEY = 7_411_190_003;
const BATCH = 5_000;
/** Rows that can be derived but are not: migration 017's partial index. */
const UNDERIVED = `channel IS NULL AND (page_url IS NOT NULL OR referrer IS NOT NULL)`;

interface UnderivedRow {
  ctid: string;
  project: string;
  page_url: string | null;
  referrer: string | null;
}

export interface BackfillOptions {
  /** Events per transaction (tests use small ones to cross batches and partitions). */
  batch?: number;
  /** Stops between two batches (the process is stopping); what is done stays done. */
  signal?: AbortSignal;
}

/**
 * Derives the dimensions of the events stored before migration 010 (migration 017 lists them),
 * then rebuilds the visits of their projects, so breakdowns by page, source or channel count
 * them like any other event. A no-op (two probes) once done.
 *
 * Each batch is its own transaction and records its projects as pending a visit rebuild, so a
 * stop or crash anywhere in between loses nothing: the next run goes on where this one stopped.
 * One process at a time: one that finds another at it returns at once (that one finishes, and
 * its rebuilds bump the data versions, so no cached answer outlives them). The writers go on
 * meanwhile: their new events are derived on write and never underived.
 *
 * `tally start` and `tally process` run it in the background once they serve (database.ts),
 * `tally migrate` in the foreground. Returns whether it ran (false: nothing to do, another
 * process at it, or stopped).
 */
export async function backfillDimensions(
  pool: pg.Pool,
  logger: Logger,
  options: BackfillOptions = {},
): Promise<boolean> {
  if (!(await workLeft(pool))) return false;
  const lock = await pool.connect();
  let held = false;
  try {
    const { rows } = await lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
      BACKFILL_LOCK_KEY,
    ]);
    held = rows[0].ok;
    if (!held) {
      logger.info('another Tally process is deriving the dimensions of older events');
      return false;
    }
    const done = await deriveAll(pool, logger, options);
    if (done) await rebuildPending(pool, logger, options.signal);
    return done;
  } finally {
    // A failed unlock would leave the session's lock on a pooled connection: close it instead.
    const unlocked =
      held &&
      (await lock.query('SELECT pg_advisory_unlock($1)', [BACKFILL_LOCK_KEY]).then(
        () => true,
        () => false,
      ));
    lock.release(held && !unlocked);
  }
}

/** Anything underived, or a project whose visits wait for a rebuild. */
async function workLeft(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ left: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM tally.events WHERE ${UNDERIVED})
         OR EXISTS (SELECT 1 FROM tally.pending_visit_rebuilds) AS left`,
  );
  return rows[0].left;
}

/**
 * Walks every partition of tally.events by ctid (a TID range scan from where the last batch
 * stopped, not a scan from the partition's start per batch); false if stopped by the signal.
 */
async function deriveAll(pool: pg.Pool, logger: Logger, options: BackfillOptions): Promise<boolean> {
  const batch = options.batch ?? BATCH;
  const { rows: parts } = await pool.query<{ part: string }>(
    `SELECT i.inhrelid::regclass::text AS part FROM pg_inherits i
      WHERE i.inhparent = 'tally.events'::regclass ORDER BY i.inhrelid::regclass::text`,
  );
  const progress = { derived: 0, batches: 0 };
  for (const { part } of parts) {
    // TRICKY: one walk finds every row that was underived when it started, but a row updated
    // meanwhile without being derived (a project move) gets a new version wherever the free space
    // map puts it, below the cursor too. So a walk that derived something ends with one probe of
    // the partial index, and walks again while rows are left; a walk that derived nothing stops
    // (the next start goes on), so this never spins.
    for (;;) {
      const walked = await walkPartition(pool, logger, part, batch, progress, options.signal);
      if (walked === undefined) return false;
      if (walked === 0 || !(await underivedIn(pool, part))) break;
    }
  }
  if (progress.derived > 0) logger.info({ derived: progress.derived }, 'event dimensions derived');
  return true;
}

/** One walk of partition `part` by ctid: the events derived, or undefined if stopped. */
async function walkPartition(
  pool: pg.Pool,
  logger: Logger,
  part: string,
  batch: number,
  progress: { derived: number; batches: number },
  signal: AbortSignal | undefined,
): Promise<number | undefined> {
  let walked = 0;
  let after = '(0,0)';
  for (;;) {
    if (signal?.aborted) return undefined;
    const last = await deriveBatch(pool, part, after, batch);
    if (last === undefined) break;
    if (progress.derived === 0) logger.info('deriving the dimensions of events stored before web analytics');
    progress.derived += last.n;
    walked += last.n;
    after = last.ctid;
    if (++progress.batches % 20 === 0)
      logger.info({ derived: progress.derived }, 'deriving event dimensions');
    if (last.n < batch) break;
  }
  return walked;
}

/** Whether partition `part` still holds an underived event (one probe of the partial index). */
async function underivedIn(pool: pg.Pool, part: string): Promise<boolean> {
  const { rows } = await pool.query<{ left: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${part} WHERE ${UNDERIVED}) AS left`,
  );
  return rows[0].left;
}

/**
 * Derives up to `batch` underived events of partition `part` after ctid `after`, in one
 * transaction; the count and the last ctid read, or undefined when there were none.
 */
async function deriveBatch(
  pool: pg.Pool,
  part: string,
  after: string,
  batch: number,
): Promise<{ n: number; ctid: string } | undefined> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // `part` is a partition's name as PostgreSQL prints it (regclass: quoted where needed), read
    // from the catalog: an identifier, never user input.
    // TRICKY: ORDER BY e.ctid, qualified. A bare `ORDER BY ctid` names the output column first, the
    // text `ctid::text AS ctid`: the batch was then the first rows in text order ('(0,10)' before
    // '(0,9)', '(10,1)' before '(9,1)') and the cursor, compared as a tid, passed over every
    // underived row between them, which no later batch read (a fast-check counterexample; 38 k of
    // 133 k underived rows of one partition left NULL). The cursor must be the greatest tid
    // read, so the order must be the tid's own.
    const { rows } = await client.query<UnderivedRow>(
      `SELECT e.ctid::text AS ctid, e.project, e.page_url, e.referrer
         FROM ${part} AS e
        WHERE e.ctid > $1::tid AND ${UNDERIVED}
        ORDER BY e.ctid
        LIMIT $2
          FOR UPDATE`,
      [after, batch],
    );
    if (rows.length === 0) {
      await client.query('COMMIT');
      return undefined;
    }
    await updateRows(client, part, rows);
    await client.query(
      `INSERT INTO tally.pending_visit_rebuilds (project)
       SELECT DISTINCT p FROM unnest($1::text[]) AS p ORDER BY 1
       ON CONFLICT DO NOTHING`,
      [[...new Set(rows.map((r) => r.project))]],
    );
    await client.query('COMMIT');
    return { n: rows.length, ctid: rows[rows.length - 1].ctid };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function updateRows(client: pg.ClientBase, part: string, rows: readonly UnderivedRow[]) {
  const d = rows.map((r) => deriveDimensions({ pageUrl: r.page_url, referrer: r.referrer, userAgent: null }));
  // An event with a page_url or a referrer is at least Direct (channels.ts): were a rule ever to
  // leave it NULL, the row would stay underived and be selected again at every start.
  if (d.some((x) => x.channel === null))
    throw new TallyError('TALLY_INTERNAL', 'deriving an older event gave no channel (see channels.ts)');
  const col = <K extends keyof (typeof d)[number]>(k: K) => d.map((x) => x[k]);
  await client.query(
    `UPDATE ${part} AS e
        SET hostname = x.h, path = x.pa, referrer_host = x.rh, utm_source = x.us, utm_medium = x.um,
            utm_campaign = x.uc, utm_term = x.ut, utm_content = x.ux, channel = x.ch
       FROM unnest($1::tid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                   $8::text[], $9::text[], $10::text[]) AS x(c, h, pa, rh, us, um, uc, ut, ux, ch)
      WHERE e.ctid = ANY($1::tid[]) AND e.ctid = x.c`,
    [
      rows.map((r) => r.ctid),
      col('hostname'),
      col('path'),
      col('referrerHost'),
      col('utmSource'),
      col('utmMedium'),
      col('utmCampaign'),
      col('utmTerm'),
      col('utmContent'),
      col('channel'),
    ],
  );
}

/**
 * Rebuilds the visits of every project whose events were derived since its last rebuild, with
 * the timeout they were built with. A project with no stored timeout has no visits to rebuild
 * (none were ever built for it, or it was moved away): its pending row just goes. The pending
 * row is deleted after the rebuild commits; a crash in between repeats the rebuild, harmlessly.
 */
async function rebuildPending(pool: pg.Pool, logger: Logger, signal?: AbortSignal): Promise<void> {
  const { rows } = await pool.query<{ project: string; timeout_ms: number | null }>(
    `SELECT p.project, s.timeout_ms
       FROM tally.pending_visit_rebuilds p
       LEFT JOIN tally.session_settings s ON s.project = p.project
      ORDER BY p.project COLLATE "C"`,
  );
  for (const { project, timeout_ms } of rows) {
    if (signal?.aborted) return;
    if (timeout_ms !== null) {
      const visits = await rebuildSessions(pool, project, timeout_ms);
      logger.info({ project, visits }, 'visits rebuilt over the newly derived dimensions');
    }
    await pool.query('DELETE FROM tally.pending_visit_rebuilds WHERE project = $1', [project]);
  }
}

/**
 * backfillDimensions in the background of a serving process, on two connections of its own (its
 * advisory lock holds one throughout), so the role's pool keeps all of its connections: failures
 * are logged (the next start goes on from where it stopped), `stop()` ends it between two batches.
 */
export function backfillInBackground(
  connectionString: string,
  applicationName: string,
  logger: Logger,
): { stop(): Promise<void> } {
  const pool = createPool(
    { connectionString, max: 2, applicationName: `${applicationName}-backfill` },
    (err) => logger.warn({ err }, 'idle PostgreSQL connection of the backfill failed'),
  );
  const abort = new AbortController();
  const run = backfillDimensions(pool, logger, { signal: abort.signal }).catch((err: unknown) => {
    if (!abort.signal.aborted)
      logger.error({ err }, 'deriving the dimensions of older events failed; the next start goes on');
  });
  return {
    async stop() {
      abort.abort();
      await run;
      await pool.end().catch(() => undefined);
    },
  };
}
