import { EVENT_DIMENSIONS, VISIT_DIMENSIONS, type EventDimension, type VisitDimension } from '../filters.ts';
import { Dictionary, narrow, type Column } from './dictionary.ts';
import { CodeColumn, f64, u32, u8 } from './growable.ts';
import type { ColumnarModel } from './model.ts';
import { shared } from './shared.ts';
import { EVENT_FIELDS, VISIT_FIELDS, propertyText, type EventRow, type VisitRow } from './rows.ts';

interface Building {
  dict: Dictionary;
  codes: CodeColumn;
}

const building = (dict = new Dictionary()): Building => ({ dict, codes: new CodeColumn() });

function buildingsOf<K extends string>(names: readonly K[]): Record<K, Building> {
  return Object.fromEntries(names.map((n) => [n, building()])) as Record<K, Building>;
}

/**
 * Collects events and visits in any order, then lays them out as a ColumnarModel. An event
 * belongs to the visit of its user and session key whose [started_at, ended_at] holds its time,
 * the same join as the scan engine's (src/store/analytics-store.ts, EVENT_IN_VISIT).
 */
export class ColumnarBuilder {
  readonly #users = new Dictionary();
  /** Session ids and keys; NULL and '' are both code 0, as coalesce(session_id, '') makes them. */
  readonly #sessions = new Dictionary();
  readonly #events = {
    user: new CodeColumn(),
    ts: f64(),
    session: new CodeColumn(),
    isBot: u8(),
    dims: buildingsOf<EventDimension>(EVENT_DIMENSIONS),
    properties: new Map<string, Building>(),
  };
  readonly #visits = {
    user: new CodeColumn(),
    session: new CodeColumn(),
    start: f64(),
    end: f64(),
    events: u32(),
    pageViews: u32(),
    isBot: u8(),
    dims: buildingsOf<VisitDimension>(VISIT_DIMENSIONS),
  };

  addEvent(row: EventRow): void {
    const e = this.#events;
    const at = e.ts.length;
    e.user.push(this.#users.code(row.user_id));
    e.ts.push(row.ts);
    e.session.push(this.#sessions.code(row.session_id || null));
    e.isBot.push(row.is_bot ? 1 : 0);
    for (const d of EVENT_DIMENSIONS) {
      const b = e.dims[d];
      b.codes.push(b.dict.code(row[EVENT_FIELDS[d]]));
    }
    if (row.properties !== null) {
      for (const key of Object.keys(row.properties)) {
        let b = e.properties.get(key);
        if (b === undefined) e.properties.set(key, (b = building()));
        b.codes.padTo(at);
        b.codes.push(b.dict.code(propertyText(row.properties, key)));
      }
    }
  }

  addVisit(row: VisitRow): void {
    const v = this.#visits;
    v.user.push(this.#users.code(row.user_id));
    v.session.push(this.#sessions.code(row.session_key || null));
    v.start.push(row.started_at);
    v.end.push(row.ended_at);
    v.events.push(row.events);
    v.pageViews.push(row.page_views);
    v.isBot.push(row.is_bot ? 1 : 0);
    for (const d of VISIT_DIMENSIONS) {
      const b = v.dims[d];
      b.codes.push(b.dict.code(row[VISIT_FIELDS[d]]));
    }
  }

  /** The model. The builder is spent afterwards (its arrays are views into the model's sources). */
  build(): ColumnarModel {
    const nUsers = this.#users.size;
    const v = this.#visits;
    const start = v.start.view();
    const vSession = v.session.view();
    const byUser = clusterByUser(v.user.view(), nUsers);
    sortRuns(byUser, (a, b) => start[a] - start[b] || vSession[a] - vSession[b]);
    const vOrder = byUser.order;
    const visits = {
      count: vOrder.length,
      start: permute(start, vOrder, Float64Array),
      end: permute(v.end.view(), vOrder, Float64Array),
      events: permute(v.events.view(), vOrder, Uint32Array),
      pageViews: permute(v.pageViews.view(), vOrder, Uint32Array),
      isBot: permute(v.isBot.view(), vOrder, Uint8Array),
      dims: columnsOf(v.dims, vOrder),
    };
    const session = permute(vSession, vOrder, Uint32Array);

    const e = this.#events;
    const ts = e.ts.view();
    const eSession = e.session.view();
    const eUser = e.user.view();
    // The visit of every event (arrival order), -1 for none; stored as unsigned so that events
    // without a visit sort after the user's visits.
    const visitOf = new Uint32Array(ts.length);
    for (let i = 0; i < ts.length; i++) {
      const u = eUser[i];
      visitOf[i] = findVisit(
        visits.start,
        visits.end,
        session,
        byUser.offsets[u],
        byUser.offsets[u + 1],
        ts[i],
        eSession[i],
      );
    }
    const eByUser = clusterByUser(eUser, nUsers);
    sortRuns(eByUser, (a, b) => visitOf[a] - visitOf[b] || ts[a] - ts[b]);
    const order = eByUser.order;
    const visit = shared(Int32Array, order.length);
    for (let i = 0; i < order.length; i++) visit[i] = visitOf[order[i]]; // 0xFFFFFFFF reads as -1
    const properties = new Map<string, Column>();
    for (const [key, b] of e.properties) {
      b.codes.padTo(order.length);
      properties.set(key, columnOf(b, order));
    }
    return {
      users: this.#users,
      userEvents: eByUser.offsets,
      userVisits: byUser.offsets,
      events: {
        count: order.length,
        ts: permute(ts, order, Float64Array),
        visit,
        isBot: permute(e.isBot.view(), order, Uint8Array),
        dims: columnsOf(e.dims, order),
        properties,
      },
      visits,
    };
  }
}

const NO_VISIT = 0xffffffff;

/**
 * The visit among [lo, hi) (one user's, in start order) with session code `session` whose span
 * holds `t`. TRICKY: visits of different session keys may overlap, so the search walks back from
 * the last visit started by `t` rather than stopping at the first span that ends too early.
 */
function findVisit(
  start: Float64Array,
  end: Float64Array,
  session: Uint32Array,
  lo: number,
  hi: number,
  t: number,
  code: number,
): number {
  let a = lo;
  let b = hi;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (start[mid] <= t) a = mid + 1;
    else b = mid;
  }
  for (let j = a - 1; j >= lo; j--) if (session[j] === code && end[j] >= t) return j;
  return NO_VISIT;
}

interface Clustered {
  /** Run u is order[offsets[u] .. offsets[u+1]). */
  offsets: Uint32Array;
  order: Uint32Array;
}

/** A stable counting sort of row indices by user code. */
function clusterByUser(user: ArrayLike<number>, nUsers: number): Clustered {
  const offsets = shared(Uint32Array, nUsers + 1);
  for (let i = 0; i < user.length; i++) offsets[user[i] + 1]++;
  for (let u = 0; u < nUsers; u++) offsets[u + 1] += offsets[u];
  const next = offsets.slice(0, nUsers);
  const order = new Uint32Array(user.length);
  for (let i = 0; i < user.length; i++) order[next[user[i]]++] = i;
  return { offsets, order };
}

function sortRuns(c: Clustered, compare: (a: number, b: number) => number): void {
  for (let u = 0; u + 1 < c.offsets.length; u++) {
    if (c.offsets[u + 1] - c.offsets[u] > 1) c.order.subarray(c.offsets[u], c.offsets[u + 1]).sort(compare);
  }
}

function permute<T extends Float64Array | Uint32Array | Uint8Array>(
  source: ArrayLike<number>,
  order: Uint32Array,
  Type: { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number },
): T {
  const out = shared(Type, order.length);
  for (let i = 0; i < order.length; i++) out[i] = source[order[i]];
  return out;
}

function columnOf(b: Building, order: Uint32Array): Column {
  return { dict: b.dict, codes: narrow(b.codes.view(), order, b.dict.size) };
}

function columnsOf<K extends string>(buildings: Record<K, Building>, order: Uint32Array): Record<K, Column> {
  const out = {} as Record<K, Column>;
  for (const k of Object.keys(buildings) as K[]) out[k] = columnOf(buildings[k], order);
  return out;
}
