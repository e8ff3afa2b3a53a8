/**
 * The rollup levels: the value of the `level` column of tally.rollup_events, rollup_pages and
 * rollup_user_bits (hours and days; minutes' users are tally.rollup_minute_users), and the width
 * of its UTC buckets (migration 001). Code and
 * SQL name a level through these constants, never by its number.
 */
export const MINUTE = { level: 0, ms: 60_000 } as const;
export const HOUR = { level: 1, ms: 3_600_000 } as const;
export const DAY = { level: 2, ms: 86_400_000 } as const;

export type Level = typeof MINUTE | typeof HOUR | typeof DAY;

/** Every level, finest first: each event counts once at each of them. */
export const LEVELS: readonly Level[] = [MINUTE, HOUR, DAY];
