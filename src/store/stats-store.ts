import type { Queryable } from './read-snapshot.ts';
import type { Piece } from '../query/range-pieces.ts';
import { DAY } from './levels.ts';
import { USERS_PER_CHUNK } from './user-numbers.ts';

export const PAGE_VIEW = 'page_view';

/** Which rows a rollup read counts. */
export interface RollupFilter {
  type?: string | undefined;
  pageUrl?: string | undefined;
}

// The pieces travel as four parallel arrays. TRICKY: each piece reads its rows through a LATERAL
// subquery with OFFSET 0, which keeps PostgreSQL from flattening it into a plain join, so the plan
// stays "for each piece, one index range scan of (project, level, bucket)". Flattened, the
// planner cannot estimate the per-piece bucket ranges and scans every row of the project: harmless
// on a small table, 8 s for a 30-day timeseries at 10 million events (see QUERY_PLANS.md).
const PIECES = `unnest($2::int2[], $3::float8[], $4::float8[], $5::int4[]) AS p(level, f, t, i)`;
const IN_PIECE = `r.project = $1 AND r.level = p.level AND r.bucket >= to_timestamp(p.f / 1000.0) AND r.bucket < to_timestamp(p.t / 1000.0)`;
/** IN_PIECE for tally.rollup_minute_users, which holds minutes (level 0) only. */
const IN_MINUTE_PIECE = `r.project = $1 AND r.bucket >= to_timestamp(p.f / 1000.0) AND r.bucket < to_timestamp(p.t / 1000.0)`;

function pieceParams(project: string, pieces: readonly Piece[]): unknown[] {
  return [
    project,
    pieces.map((p) => p.level),
    pieces.map((p) => p.from),
    pieces.map((p) => p.to),
    pieces.map((p) => p.index),
  ];
}

/**
 * Reads of the rollup tables. Every read takes the range as pieces (from range-pieces.ts), so
 * it touches the coarsest level that fits, and sums per output bucket index.
 */
export class StatsStore {
  readonly #pool: Queryable;

  constructor(pool: Queryable) {
    this.#pool = pool;
  }

  /** Event counts per output index, optionally of one type. */
  async eventCounts(
    project: string,
    pieces: readonly Piece[],
    filter: RollupFilter,
  ): Promise<Map<number, number>> {
    const params = pieceParams(project, pieces);
    let where = IN_PIECE;
    if (filter.type !== undefined) where += ` AND r.type = $${params.push(filter.type)}`;
    return this.#byIndex(
      `SELECT p.i AS i, sum(r.count)::int8 AS n FROM ${PIECES}
         CROSS JOIN LATERAL (SELECT r.count FROM tally.rollup_events r WHERE ${where} OFFSET 0) r GROUP BY p.i`,
      params,
    );
  }

  /** Counts of events that carry a page_url, per output index, by type and/or page. */
  async pageCounts(
    project: string,
    pieces: readonly Piece[],
    filter: RollupFilter,
  ): Promise<Map<number, number>> {
    const params = pieceParams(project, pieces);
    let where = IN_PIECE;
    if (filter.type !== undefined) where += ` AND r.type = $${params.push(filter.type)}`;
    // Pages are counted by number (migration 016); an unknown URL has none, and counts nothing.
    if (filter.pageUrl !== undefined)
      where += ` AND r.page_id = (SELECT d.id FROM tally.page_urls d WHERE d.page_url = $${params.push(filter.pageUrl)})`;
    return this.#byIndex(
      `SELECT p.i AS i, sum(r.count)::int8 AS n FROM ${PIECES}
         CROSS JOIN LATERAL (SELECT r.count FROM tally.rollup_pages r WHERE ${where} OFFSET 0) r GROUP BY p.i`,
      params,
    );
  }

  /**
   * Exact distinct users per output index: the union of the users of every bucket of its pieces
   * (migrations 005, 016). Hours and days keep them as bit strings over the user numbers, 8192
   * users a row: OR-ed chunk by chunk, their set bits counted; a 30-day summary reads about 30
   * rows per 8192 users. Minutes keep a sorted array of numbers each (a minute has a few users
   * per chunk): each number of a minute piece counts once per index, unless its bit is already
   * set in that index's hours and days. A UTC range has at most 59 minutes at each end; a zone
   * whose offset is not whole hours makes every hour bucket 60 minutes (QUERY_PLANS.md: slow).
   */
  async uniqueUsers(project: string, pieces: readonly Piece[]): Promise<Map<number, number>> {
    return this.#byIndex(
      `WITH bits AS (
         SELECT p.i AS i, r.chunk, bit_or(r.users) AS users FROM ${PIECES}
           CROSS JOIN LATERAL (SELECT r.chunk, r.users FROM tally.rollup_user_bits r WHERE p.level > 0 AND ${IN_PIECE} OFFSET 0) r
          GROUP BY p.i, r.chunk
       ), minutes AS (
         SELECT DISTINCT p.i AS i, u.num FROM ${PIECES}
           CROSS JOIN LATERAL (SELECT r.users FROM tally.rollup_minute_users r WHERE p.level = 0 AND ${IN_MINUTE_PIECE} OFFSET 0) r
           CROSS JOIN LATERAL unnest(r.users) AS u(num)
       )
       SELECT i, sum(n)::int8 AS n FROM (
         SELECT i, bit_count(users) AS n FROM bits
         UNION ALL
         SELECT m.i, count(*) FROM minutes m
           LEFT JOIN bits b ON b.i = m.i AND b.chunk = m.num / ${USERS_PER_CHUNK}
          WHERE b.users IS NULL OR get_bit(b.users, m.num % ${USERS_PER_CHUNK}) = 0
          GROUP BY m.i
       ) c GROUP BY i`,
      pieceParams(project, pieces),
    );
  }

  async topPages(
    project: string,
    pieces: readonly Piece[],
    limit: number,
  ): Promise<{ page_url: string; views: number }[]> {
    const params = [...pieceParams(project, pieces), PAGE_VIEW, limit];
    const { rows } = await this.#pool.query<{ page_url: string; views: number }>(
      `SELECT d.page_url, v.views FROM (
         SELECT r.page_id, sum(r.count)::int8 AS views FROM ${PIECES}
           CROSS JOIN LATERAL (SELECT r.page_id, r.count FROM tally.rollup_pages r WHERE ${IN_PIECE} AND r.type = $6 OFFSET 0) r
          GROUP BY r.page_id
       ) v JOIN tally.page_urls d ON d.id = v.page_id
        ORDER BY v.views DESC, d.page_url LIMIT $7`,
      params,
    );
    return rows;
  }

  async eventTypes(
    project: string,
    pieces: readonly Piece[],
    limit: number,
  ): Promise<{ type: string; count: number }[]> {
    const { rows } = await this.#pool.query<{ type: string; count: number }>(
      `SELECT r.type, sum(r.count)::int8 AS count FROM ${PIECES}
         CROSS JOIN LATERAL (SELECT r.type, r.count FROM tally.rollup_events r WHERE ${IN_PIECE} OFFSET 0) r
        GROUP BY r.type ORDER BY count DESC, r.type LIMIT $6`,
      [...pieceParams(project, pieces), limit],
    );
    return rows;
  }

  /** Per project, the events counted in the day-level rollups of days starting at or after `since`. */
  async dayTotalsSince(projects: readonly string[], since: Date): Promise<Map<string, number>> {
    const { rows } = await this.#pool.query<{ project: string; total: string }>(
      `SELECT project, sum(count) AS total FROM tally.rollup_events
        WHERE project = ANY($1) AND level = $3 AND bucket >= $2 GROUP BY project`,
      [projects, since, DAY.level],
    );
    return new Map(rows.map((r) => [r.project, Number(r.total)]));
  }

  async #byIndex(sql: string, params: unknown[]): Promise<Map<number, number>> {
    const { rows } = await this.#pool.query<{ i: number; n: number }>(sql, params);
    return new Map(rows.map((r) => [r.i, r.n]));
  }
}
