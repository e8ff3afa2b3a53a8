import { NONE_VALUE, type Filter } from '../filters.ts';
import type { Codes, Column, Dictionary } from './dictionary.ts';
import type { ColumnarModel } from './model.ts';

/** A filter over one column: `pass[code]` is 1 when the value of that code passes. */
export interface CodeFilter {
  codes: Codes;
  pass: Uint8Array;
}

/** A question's filters compiled against the model's dictionaries. */
export interface CompiledFilters {
  /** Event-level filters (event dimensions and properties), tested on each event. */
  events: CodeFilter[];
  /** Visit-level filters, tested on the event's visit (and on the visit itself). */
  visits: CodeFilter[];
  /** Whether an event without a visit passes the visit-level filters (they see NULL). */
  noVisitPasses: boolean;
  /** A filter no value can pass (a property no event has, under `==`): nothing is selected. */
  empty: boolean;
}

/**
 * The scan engine's predicate on one value (src/store/analytics-store.ts, filterSql): `==` is
 * "one of" with `(none)` naming NULL; `~=` is a case-insensitive substring of a non-NULL value;
 * `!=` and `!~` are their negations, so they keep NULL where their positive form does not.
 */
export function valuePasses(f: Filter, value: string | null): boolean {
  if (f.op === 'is' || f.op === 'is_not') {
    const is = f.values.some((v) => (v === NONE_VALUE ? value === null : value === v));
    return f.op === 'is' ? is : !is;
  }
  const lower = value?.toLowerCase();
  const has = lower !== undefined && f.values.some((v) => lower.includes(v.toLowerCase()));
  return f.op === 'contains' ? has : !has;
}

/** Evaluates `f` once per distinct value of the dictionary, not once per row. */
function table(f: Filter, dict: Dictionary): Uint8Array {
  const pass = new Uint8Array(dict.size);
  for (let code = 0; code < dict.size; code++) pass[code] = valuePasses(f, dict.value(code)) ? 1 : 0;
  return pass;
}

export function compileFilters(model: ColumnarModel, filters: readonly Filter[]): CompiledFilters {
  const out: CompiledFilters = { events: [], visits: [], noVisitPasses: true, empty: false };
  for (const f of filters) {
    const d = f.dimension;
    if (d.kind === 'visit') {
      const column = model.visits.dims[d.name];
      out.visits.push({ codes: column.codes, pass: table(f, column.dict) });
      out.noVisitPasses &&= valuePasses(f, null);
      continue;
    }
    const column: Column | undefined =
      d.kind === 'event' ? model.events.dims[d.name] : model.events.properties.get(d.key);
    if (column === undefined) {
      // No event has this property: every event sees NULL.
      if (!valuePasses(f, null)) out.empty = true;
      continue;
    }
    out.events.push({ codes: column.codes, pass: table(f, column.dict) });
  }
  return out;
}
