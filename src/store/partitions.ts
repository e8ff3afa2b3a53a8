import type pg from 'pg';
import { bumpAllDataVersions } from './data-versions.ts';

const DAY_MS = 86_400_000;
const PARTITION_LOCK_KEY = 7_411_190_002;

function partitionName(dayStartMs: number): string {
  return `events_p${new Date(dayStartMs).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/**
 * Keeps the daily partitions of `tally.events` in step with the data: creates the ones a batch
 * needs before the batch runs, and drops the ones older than the retention window.
 */
export class RawPartitions {
  readonly #pool: pg.Pool;
  readonly #known = new Set<number>();
  readonly #retentionDays: number | undefined;
  #loaded = false;

  /** `retentionDays` undefined keeps raw events (and their dedup keys) forever. */
  constructor(pool: pg.Pool, retentionDays: number | undefined) {
    this.#pool = pool;
    this.#retentionDays = retentionDays;
  }

  /** Epoch ms before which raw rows are not stored (their partition would already be dropped). */
  cutoff(now = Date.now()): number {
    return rawCutoff(this.#retentionDays, now);
  }

  /** Makes sure a partition exists for every day in `days` (UTC day starts, epoch ms). */
  async ensure(days: Iterable<number>): Promise<void> {
    if (!this.#loaded) await this.#load();
    const missing = [...new Set(days)].filter((d) => !this.#known.has(d));
    if (missing.length === 0) return;
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      // Serialise creators across processes; IF NOT EXISTS alone still races on the catalog.
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK_KEY]);
      for (const day of missing.sort((a, b) => a - b)) {
        const from = new Date(day).toISOString();
        const to = new Date(day + DAY_MS).toISOString();
        await client.query(
          `CREATE TABLE IF NOT EXISTS tally.${partitionName(day)} PARTITION OF tally.events FOR VALUES FROM ('${from}') TO ('${to}')`,
        );
      }
      await client.query('COMMIT');
      for (const day of missing) this.#known.add(day);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Drops partitions wholly older than the retention window and forgets old dedup keys. */
  async applyRetention(now = Date.now()): Promise<{ dropped: string[]; forgottenIds: number }> {
    if (this.#retentionDays === undefined) return { dropped: [], forgottenIds: 0 };
    await this.#load();
    const cutoff = this.cutoff(now);
    const dropped: string[] = [];
    for (const day of [...this.#known].sort((a, b) => a - b)) {
      if (day + DAY_MS > cutoff) continue;
      const name = partitionName(day);
      await this.#pool.query(`DROP TABLE IF EXISTS tally.${name}`);
      this.#known.delete(day);
      dropped.push(name);
    }
    // Cached answers read from raw events (user events, seed 003's count) must not outlive them.
    if (dropped.length > 0) await bumpAllDataVersions(this.#pool);
    // The dedup ledger is kept one extra day beyond the raw window.
    const { rowCount } = await this.#pool.query(
      `DELETE FROM tally.event_ids WHERE seen_at < to_timestamp($1 / 1000.0)`,
      [cutoff - DAY_MS],
    );
    return { dropped, forgottenIds: rowCount ?? 0 };
  }

  async #load(): Promise<void> {
    const { rows } = await this.#pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
         JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'tally' AND p.relname = 'events'`,
    );
    this.#known.clear();
    for (const { name } of rows) {
      const m = /^events_p(\d{4})(\d{2})(\d{2})$/.exec(name);
      if (m) this.#known.add(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    }
    this.#loaded = true;
  }
}

/** The retention cutoff, shared with the query side (which refuses raw questions before it). */
export function rawCutoff(retentionDays: number | undefined, now: number): number {
  if (retentionDays === undefined) return Number.NEGATIVE_INFINITY;
  return Math.floor(now / DAY_MS) * DAY_MS - retentionDays * DAY_MS;
}

export function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}
