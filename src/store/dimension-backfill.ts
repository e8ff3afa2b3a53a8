import type pg from 'pg';
import type { Logger } from 'pino';
import { deriveDimensions } from '../event/derive.ts';
import { rebuildSessions } from './sessions-store.ts';

// Any constant works; it only has to be the same for every Tally process on a database.
const BACKFILL_LOCK_KEY = 7_411_190_003;
const BATCH = 5_000;
/** The timeout migration 013 rebuilt visits with, for a project that has none stored. */
const DEFAULT_TIMEOUT_MS = 30 * 60_000;

interface UnderivedRow {
  part: string;
  ctid: string;
  project: string;
  page_url: string | null;
  referrer: string | null;
}

/**
 * Derives the dimensions of the events stored before migration 010 (migration 017 lists them),
 * then rebuilds the visits of their projects, so breakdowns by page, source or channel count
 * them like any other event. Runs after the migrations, before the process serves: a no-op (two
 * index probes) once done. Each batch is its own transaction and records its projects as pending
 * a visit rebuild, so a restart anywhere in between finishes the work. Concurrent processes
 * serialise on an advisory lock; the later ones then find nothing left.
 */
export async function backfillDimensions(pool: pg.Pool, logger: Logger): Promise<void> {
  const lock = await pool.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [BACKFILL_LOCK_KEY]);
    let derived = 0;
    for (;;) {
      const n = await deriveBatch(pool);
      if (n === 0) break;
      if (derived === 0) logger.info('deriving the dimensions of events stored before web analytics');
      derived += n;
      if (derived % (BATCH * 20) === 0) logger.info({ derived }, 'deriving event dimensions');
    }
    if (derived > 0) logger.info({ derived }, 'event dimensions derived');
    await rebuildPending(pool, logger);
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [BACKFILL_LOCK_KEY]).catch(() => undefined);
    lock.release();
  }
}

/** Derives up to BATCH underived events in one transaction; returns how many. */
async function deriveBatch(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<UnderivedRow>(
      `SELECT e.tableoid::regclass::text AS part, e.ctid::text AS ctid, e.project, e.page_url, e.referrer
         FROM tally.events e
        WHERE e.channel IS NULL AND (e.page_url IS NOT NULL OR e.referrer IS NOT NULL)
        LIMIT $1
          FOR UPDATE`,
      [BATCH],
    );
    const byPart = Map.groupBy(rows, (r) => r.part);
    for (const [part, partRows] of byPart) await updatePartition(client, part, partRows);
    await client.query(
      `INSERT INTO tally.pending_visit_rebuilds (project)
       SELECT DISTINCT p FROM unnest($1::text[]) AS p ORDER BY 1
       ON CONFLICT DO NOTHING`,
      [[...new Set(rows.map((r) => r.project))]],
    );
    await client.query('COMMIT');
    return rows.length;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function updatePartition(client: pg.ClientBase, part: string, rows: readonly UnderivedRow[]) {
  const d = rows.map((r) => deriveDimensions({ pageUrl: r.page_url, referrer: r.referrer, userAgent: null }));
  const col = <K extends keyof (typeof d)[number]>(k: K) => d.map((x) => x[k]);
  // `part` is a partition's name as PostgreSQL prints it (regclass, quoted where needed), read
  // from the catalog a moment ago: an identifier, never user input.
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

/** Rebuilds the visits of every project whose events were derived since its last rebuild. */
async function rebuildPending(pool: pg.Pool, logger: Logger): Promise<void> {
  const { rows } = await pool.query<{ project: string; timeout_ms: number | null }>(
    `SELECT p.project, s.timeout_ms
       FROM tally.pending_visit_rebuilds p
       LEFT JOIN tally.session_settings s ON s.project = p.project
      ORDER BY p.project COLLATE "C"`,
  );
  for (const { project, timeout_ms } of rows) {
    const visits = await rebuildSessions(pool, project, timeout_ms ?? DEFAULT_TIMEOUT_MS);
    await pool.query('DELETE FROM tally.pending_visit_rebuilds WHERE project = $1', [project]);
    logger.info({ project, visits }, 'visits rebuilt over the newly derived dimensions');
  }
}
