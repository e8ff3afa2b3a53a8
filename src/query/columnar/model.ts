import type { EventDimension, VisitDimension } from '../filters.ts';
import type { Column, Dictionary } from './dictionary.ts';

/**
 * The columnar read model (src/query/QUERY_PLANS.md, "A columnar read model in the query
 * process"). Events are clustered by user, and within a user by visit (visits in start order,
 * events of no visit last), then by time: a user's events are one contiguous run, and so are a
 * visit's. Visits are clustered by user too, in start order.
 */
export interface ColumnarModel {
  users: Dictionary;
  /** User u's events are [userEvents[u], userEvents[u+1]); its visits likewise in userVisits. */
  userEvents: Uint32Array;
  userVisits: Uint32Array;
  events: EventColumns;
  visits: VisitColumns;
}

export interface EventColumns {
  count: number;
  ts: Float64Array;
  /** The index of the event's visit (tally.sessions row), -1 when it has none. */
  visit: Int32Array;
  isBot: Uint8Array;
  dims: Record<EventDimension, Column>;
  /** One column per property key seen (codes 0 where an event lacks the key). */
  properties: Map<string, Column>;
}

export interface VisitColumns {
  count: number;
  start: Float64Array;
  end: Float64Array;
  events: Uint32Array;
  pageViews: Uint32Array;
  isBot: Uint8Array;
  dims: Record<VisitDimension, Column>;
}

/** Bytes held by the model's arrays and dictionaries (approximate for the dictionaries). */
export function modelBytes(m: ColumnarModel): number {
  const columns = [
    ...Object.values(m.events.dims),
    ...m.events.properties.values(),
    ...Object.values(m.visits.dims),
  ];
  const arrays = [
    m.userEvents,
    m.userVisits,
    m.events.ts,
    m.events.visit,
    m.events.isBot,
    m.visits.start,
    m.visits.end,
    m.visits.events,
    m.visits.pageViews,
    m.visits.isBot,
    ...columns.map((c) => c.codes),
  ];
  const dicts = new Set([m.users, ...columns.map((c) => c.dict)]);
  let bytes = 0;
  for (const a of arrays) bytes += a.byteLength;
  for (const d of dicts) bytes += d.bytes;
  return bytes;
}
