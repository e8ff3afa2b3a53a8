import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import { Dictionary, type Column } from '../../src/query/columnar/dictionary.ts';
import type { ColumnarModel } from '../../src/query/columnar/model.ts';
import { packModel, unpackModel } from '../../src/query/columnar/transfer.ts';
import { TIMEOUT, eventArb, eventsOf, modelOf, posted } from './columnar-arbitraries.ts';
import { sessionize } from './web-fixtures.ts';

/**
 * A model crosses from the load worker to the thread that answers packed (src/query/columnar/
 * transfer.ts): what arrives must be the model that left, every code of every dictionary and every
 * array element, through a real structured clone. Its summary digests cross with it: the layers
 * property test (columnar-layers.test.ts) answers from a base made so half the time.
 */

function values(d: Dictionary): (string | null)[] {
  return Array.from({ length: d.size }, (_, c) => d.value(c));
}

function assertSameDictionary(got: Dictionary, want: Dictionary, where: string): void {
  assert.deepEqual(values(got), values(want), `${where}: values by code`);
  for (let c = 1; c < want.size; c++) assert.equal(got.find(want.value(c)!), c, `${where}: find`);
  assert.equal(got.code(null), 0, `${where}: NULL is code 0`);
}

function assertSameColumns(got: Record<string, Column>, want: Record<string, Column>, where: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${where}: columns`);
  for (const k of Object.keys(want)) {
    assertSameDictionary(got[k].dict, want[k].dict, `${where}.${k}`);
    assert.deepEqual(got[k].codes, want[k].codes, `${where}.${k}: codes`);
  }
}

function assertSameModel(got: ColumnarModel, want: ColumnarModel): void {
  assertSameDictionary(got.users, want.users, 'users');
  assert.deepEqual(got.userEvents, want.userEvents);
  assert.deepEqual(got.userVisits, want.userVisits);
  const { dims: ed, properties: ep, ...eventArrays } = want.events;
  const { dims: gd, properties: gp, ...gotEventArrays } = got.events;
  assert.deepEqual(gotEventArrays, eventArrays, 'event arrays');
  assertSameColumns(gd, ed, 'events');
  assertSameColumns(Object.fromEntries(gp), Object.fromEntries(ep), 'properties');
  const { dims: vd, ...visitArrays } = want.visits;
  const { dims: gvd, ...gotVisitArrays } = got.visits;
  assert.deepEqual(gotVisitArrays, visitArrays, 'visit arrays');
  assertSameColumns(gvd, vd, 'visits');
}

test('a model posted packed to another thread unpacks to the same model', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(eventArb, { maxLength: 60 }), async (raws) => {
      const events = eventsOf(raws);
      const model = modelOf(events, sessionize(events, TIMEOUT));
      assertSameModel(await unpackModel(await posted(packModel(model))), model);
    }),
    { numRuns: 200 },
  );
});

test('the arrays cross shared, not copied: a write on one side reads on the other', async () => {
  const events = eventsOf([{ ...fc.sample(eventArb, 1)[0], bot: false }]);
  const model = modelOf(events, sessionize(events, TIMEOUT));
  const got = await unpackModel(await posted(packModel(model)));
  model.events.ts[0] = 42;
  assert.equal(got.events.ts[0], 42);
});

test('a dictionary past one packed chunk (2^24 characters) packs into several and unpacks whole', async () => {
  const d = new Dictionary();
  const long = (i: number) => `${String(i).padStart(4, '0')}${'x'.repeat(3_000_000)}`;
  const all = [...Array.from({ length: 7 }, (_, i) => long(i)), 'short', '', 'é✓', long(7)];
  for (const v of all) d.code(v);
  const packed = d.pack();
  assert.ok(packed.texts.length >= 2, `${packed.texts.length} chunks`);
  let pauses = 0;
  const got = await Dictionary.unpack(packed, 2, () => {
    pauses++;
    return nextTurn();
  });
  assertSameDictionary(got, d, 'chunked');
  assert.equal(pauses, Math.floor(all.length / 2), 'a pause every 2 values');
});
