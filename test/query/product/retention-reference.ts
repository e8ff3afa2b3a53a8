import type { Visit, WebEvent } from '../web-fixtures.ts';
import { Reference, type Bots, type RefFilter } from '../web-reference.ts';

/**
 * Retention (CONTRACT-21, "Retention") computed from scratch over the rows a test made, and the
 * local calendar periods it needs, found by reading local dates (Intl) instant by instant rather
 * than by any offset arithmetic: slow, and independent of src/query/product/periods.ts.
 */

export type Period = 'day' | 'week' | 'month';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Coarse to fine: a day at a time, then closer (zones change offset on whole seconds). */
const STEPS = [DAY, HOUR, 15 * MINUTE, MINUTE, SECOND];

const formats = new Map<string, Intl.DateTimeFormat>();

/** The local calendar date of `t` in `tz`: [year, month 1-12, day]. */
export function localDate(t: number, tz: string): [number, number, number] {
  let f = formats.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, year: 'numeric', month: 'numeric', day: 'numeric' });
    formats.set(tz, f);
  }
  const part = (type: string) => Number(f.formatToParts(t).find((p) => p.type === type)!.value);
  return [part('year'), part('month'), part('day')];
}

/**
 * The number of the local period holding `t`, consecutive periods numbered consecutively: days
 * since 1970-01-01, Monday-weeks since the week of 1970-01-01 (a Thursday), months since year 0.
 */
export function periodNumber(t: number, period: Period, tz: string): number {
  const [y, m, d] = localDate(t, tz);
  const days = Date.UTC(y, m - 1, d) / DAY;
  if (period === 'day') return days;
  if (period === 'week') return Math.floor((days + 3) / 7);
  return y * 12 + m - 1;
}

/**
 * The first instant of the period holding `t`: walks back a day at a time while the instant
 * before is in the same period, then by an hour, 15 minutes, a minute and a second.
 */
export function refPeriodStart(t: number, period: Period, tz: string): number {
  const n = periodNumber(t, period, tz);
  let s = Math.floor(t / SECOND) * SECOND;
  for (const step of STEPS) {
    while (periodNumber(s - step, period, tz) === n) s -= step;
  }
  return s;
}

/** The first instant after `start` in a later period. */
export function refNextPeriod(start: number, period: Period, tz: string): number {
  const n = periodNumber(start, period, tz);
  let s = start;
  for (const step of STEPS) {
    while (periodNumber(s + step, period, tz) === n) s += step;
  }
  return s + SECOND;
}

export interface RefRetentionQuestion {
  from: number;
  to: number;
  bots: Bots;
  filters: RefFilter[];
  period: Period;
  periods: number;
  tz: string;
  cohortFilters: RefFilter[];
  returnFilters: RefFilter[];
}

export interface RefCohort {
  start: number;
  users: number;
  returned: (number | null)[];
}

/** The contract's retention table for the rows `events` and `visits`. */
export function refRetention(
  events: readonly WebEvent[],
  visits: readonly Visit[],
  q: RefRetentionQuestion,
): { cohorts: RefCohort[] } {
  if (!(q.from < q.to)) return { cohorts: [] };
  const ref = new Reference(events, visits);
  const passing = (filters: RefFilter[]) =>
    new Set(
      ref.selectedEvents({ from: -Infinity, to: Infinity, filters, bots: 'include' }).map((e) => e.event_id),
    );
  const cohortPass = passing(q.cohortFilters);
  const returnPass = passing(q.returnFilters);
  // A user's events: every stored one passing bots and the global filters, up to q.to.
  const mine = new Map<string, WebEvent[]>();
  for (const e of ref.selectedEvents({ from: -Infinity, to: q.to, filters: q.filters, bots: q.bots })) {
    mine.set(e.user_id, [...(mine.get(e.user_id) ?? []), e]);
  }

  const num = (t: number) => periodNumber(t, q.period, q.tz);
  const first = num(q.from);
  const last = num(q.to - 1);
  const cohorts: RefCohort[] = [];
  let start = refPeriodStart(q.from, q.period, q.tz);
  for (let c = first; c <= last; c++) {
    if (num(start) !== c) throw new Error(`the zone skips period ${c}: the reference cannot list it`);
    cohorts.push({
      start,
      users: 0,
      returned: Array.from({ length: q.periods }, (_, k) => (c + k <= last ? 0 : null)),
    });
    start = refNextPeriod(start, q.period, q.tz);
  }

  for (const list of mine.values()) {
    const cohortEvent = list.filter((e) => cohortPass.has(e.event_id)).sort((a, b) => a.ts - b.ts)[0];
    if (cohortEvent === undefined || cohortEvent.ts < q.from || cohortEvent.ts >= q.to) continue;
    const c = num(cohortEvent.ts);
    const row = cohorts[c - first];
    row.users++;
    const back = new Set(list.filter((e) => returnPass.has(e.event_id)).map((e) => num(e.ts) - c));
    for (let k = 0; k < q.periods; k++) {
      const seen = row.returned[k];
      if (back.has(k) && seen !== null) row.returned[k] = seen + 1;
    }
  }
  return { cohorts };
}
