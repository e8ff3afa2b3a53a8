import { setImmediate as nextTurn } from 'node:timers/promises';
import type { EventDimension, VisitDimension } from '../filters.ts';
import { Dictionary, type Codes, type Column, type PackedDictionary } from './dictionary.ts';
import type { ColumnarModel, EventColumns, VisitColumns } from './model.ts';

/**
 * A ColumnarModel as one thread posts it to another (the load worker to the thread that answers:
 * load-worker.ts). Its arrays are on SharedArrayBuffers (shared.ts) and cross as they are, without
 * a copy; its dictionaries cross packed (Dictionary.pack).
 */
export interface PackedModel {
  users: PackedDictionary;
  userEvents: Uint32Array;
  userVisits: Uint32Array;
  events: Omit<EventColumns, 'dims' | 'properties'> & {
    dims: Record<EventDimension, PackedColumn>;
    properties: [string, PackedColumn][];
  };
  visits: Omit<VisitColumns, 'dims'> & { dims: Record<VisitDimension, PackedColumn> };
}

interface PackedColumn {
  dict: PackedDictionary;
  codes: Codes;
}

export function packModel(m: ColumnarModel): PackedModel {
  return {
    users: m.users.pack(),
    userEvents: m.userEvents,
    userVisits: m.userVisits,
    events: {
      ...m.events,
      dims: mapValues(m.events.dims, packColumn),
      properties: [...m.events.properties].map(([key, c]) => [key, packColumn(c)]),
    },
    visits: { ...m.visits, dims: mapValues(m.visits.dims, packColumn) },
  };
}

/**
 * The ArrayBuffers under the typed arrays in `value` (plain objects and arrays, walked): what a
 * postMessage of it transfers rather than copies. SharedArrayBuffers are left out: they cross
 * shared anyway.
 */
export function transferables(value: unknown, found = new Set<ArrayBuffer>()): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
  } else if (Array.isArray(value)) {
    for (const v of value) transferables(v, found);
  } else if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) transferables(v, found);
  }
  return [...found];
}

/** Values interned between two turns of the event loop while a model is unpacked. */
const UNPACK_SLICE = 20_000;

/**
 * The model `p` holds. Its dictionaries are rebuilt a slice at a time, letting the event loop run
 * in between: a million users take ~100 ms to intern, which must not hold up the answers.
 */
export async function unpackModel(p: PackedModel): Promise<ColumnarModel> {
  const unpackColumn = async (c: PackedColumn): Promise<Column> => ({
    dict: await Dictionary.unpack(c.dict, UNPACK_SLICE, () => nextTurn()),
    codes: c.codes,
  });
  const columns = async <K extends string>(packed: Record<K, PackedColumn>): Promise<Record<K, Column>> => {
    const out = {} as Record<K, Column>;
    for (const k of Object.keys(packed) as K[]) out[k] = await unpackColumn(packed[k]);
    return out;
  };
  const properties = new Map<string, Column>();
  for (const [key, c] of p.events.properties) properties.set(key, await unpackColumn(c));
  return {
    users: await Dictionary.unpack(p.users, UNPACK_SLICE, () => nextTurn()),
    userEvents: p.userEvents,
    userVisits: p.userVisits,
    events: { ...p.events, dims: await columns(p.events.dims), properties },
    visits: { ...p.visits, dims: await columns(p.visits.dims) },
  };
}

function packColumn(c: Column): PackedColumn {
  return { dict: c.dict.pack(), codes: c.codes };
}

function mapValues<K extends string, A, B>(o: Record<K, A>, f: (a: A) => B): Record<K, B> {
  const out = {} as Record<K, B>;
  for (const k of Object.keys(o) as K[]) out[k] = f(o[k]);
  return out;
}
