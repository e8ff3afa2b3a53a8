import type { Filter } from '../filters.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import { periodStarts, type RetentionPeriod } from './periods.ts';
import { eventTest, forEachSequence, type EventTest, type SequenceQuestion } from './sequences.ts';

/**
 * Retention (issue 21): users in cohorts by the local period (day, week, month in a time zone) of
 * their first event, or of the first doing something, and how many of each cohort came back (or
 * did something) in each period after. Exact: one pass over each user's events in time order.
 */

export type { RetentionPeriod } from './periods.ts';

/** The question; q.from and q.to bound the cohort events, not the history that makes them first. */
export interface RetentionQuestion extends SequenceQuestion {
  period: RetentionPeriod;
  /** Columns: returned[0 … periods - 1]. */
  periods: number;
  /** An IANA zone, validated by the caller (isValidZone). */
  tz: string;
  /** [] = first seen (any event); else the first event passing them. */
  cohortFilters: readonly Filter[];
  /** [] = any event. */
  returnFilters: readonly Filter[];
}

export interface RetentionCohort {
  /** The period's local start, epoch ms (the first cohort's may be before q.from). */
  start: number;
  users: number;
  /** Per period from the cohort's own on: users with a return event in it; null if it starts at or after q.to. */
  returned: (number | null)[];
}

export interface RetentionAnswer {
  cohorts: RetentionCohort[];
}

/** The cohorts of every period intersecting [q.from, q.to), in order, empty ones included. */
export function retention(models: readonly ColumnarModel[], q: RetentionQuestion): RetentionAnswer {
  const starts = periodStarts(q.from, q.to, q.period, q.tz);
  const cohorts = Math.max(0, starts.length - 1);
  const width = q.periods;
  const users = new Float64Array(cohorts);
  const returned = new Float64Array(cohorts * width);

  let model: ColumnarModel | undefined;
  let isCohort: EventTest = () => false;
  let isReturn: EventTest = () => false;
  // TRICKY: "first" is over the user's whole history: an earlier cohort event before q.from puts
  // the user in no cohort, so the sequences start at -Infinity and end at q.to.
  const everything: SequenceQuestion = { from: -Infinity, to: q.to, bots: q.bots, filters: q.filters };
  if (cohorts > 0) {
    forEachSequence(models, everything, 'user', (seq) => {
      if (seq.model !== model) {
        model = seq.model;
        isCohort = eventTest(model, q.cohortFilters);
        isReturn = eventTest(model, q.returnFilters);
      }
      const { ts } = seq.model.events;
      const events = seq.events;
      const n = seq.n;
      let first = 0;
      while (first < n && !isCohort(events[first])) first++;
      if (first === n || ts[events[first]] < q.from) return;
      const cohort = periodOf(starts, ts[events[first]]);
      users[cohort]++;

      // Returns count anywhere in the cohort's own period, before the cohort event too.
      let i = first;
      while (i > 0 && ts[events[i - 1]] >= starts[cohort]) i--;
      // Periods past the last cohort start at or after q.to: no event of the sequence is there.
      const end = Math.min(cohorts, cohort + width);
      let p = cohort;
      let counted = -1;
      for (; i < n; i++) {
        const e = events[i];
        while (ts[e] >= starts[p + 1]) if (++p === end) return;
        if (p !== counted && isReturn(e)) {
          returned[cohort * width + p - cohort]++;
          counted = p;
        }
      }
    });
  }

  const out: RetentionCohort[] = [];
  for (let c = 0; c < cohorts; c++) {
    const row: (number | null)[] = [];
    for (let k = 0; k < width; k++) row.push(c + k < cohorts ? returned[c * width + k] : null);
    out.push({ start: starts[c], users: users[c], returned: row });
  }
  return { cohorts: out };
}

/** The index of the period holding `t` (starts[0] <= t < starts[last]). */
function periodOf(starts: readonly number[], t: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (starts[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}
