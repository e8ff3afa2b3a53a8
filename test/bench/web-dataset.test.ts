import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebDataset } from '../../bench/web-dataset.ts';
import { groundTruth } from '../../bench/lib/web-truth.ts';

const MINUTE = 60_000;
const END = Date.UTC(2026, 11, 1);

function all(events: number, seed?: number) {
  const d = new WebDataset({ events, end: END, seed });
  return { d, events: [...d.batches(997)].flat() };
}

test('the web data set is exactly as large as asked, and the same for the same seed', () => {
  const a = all(20_000);
  const b = all(20_000);
  assert.equal(a.events.length, 20_000);
  assert.deepEqual(a.events, b.events);
  assert.deepEqual(a.d.counts, b.d.counts);
  assert.notDeepEqual(all(20_000, 7).events.slice(0, 50), a.events.slice(0, 50));
});

test("a visitor's visits are separate sessions under the 30-minute timeout, and their count is the generator's", () => {
  const { d, events } = all(50_000);
  const last = new Map<string, number>();
  let visits = 0;
  for (const e of events) {
    const prev = last.get(e.userId);
    if (prev === undefined || e.ts - prev > 30 * MINUTE) visits++;
    else
      assert.ok(e.ts - prev >= 2_000 && e.ts - prev <= 10 * MINUTE, `gap ${e.ts - prev} ms inside a visit`);
    if (prev !== undefined) assert.ok(e.ts > prev, 'a visitor’s events in time order');
    last.set(e.userId, e.ts);
  }
  assert.equal(visits, d.counts.visits);
  assert.equal(last.size, d.counts.visitors);
  assert.ok(events.every((e) => e.ts >= END - 30 * 86_400_000 && e.ts < END + 3_600_000));
});

test('the shape: ~10 events per visitor, ~3.3 per visit, ~2 % bot events, UTM-tagged landings', () => {
  const { d, events } = all(100_000);
  const { visits, visitors, botEvents } = d.counts;
  assert.ok(visitors > 9_000 && visitors < 11_000, `visitors ${visitors}`);
  assert.ok(visits > 27_000 && visits < 33_000, `visits ${visits}`);
  assert.ok(botEvents > 1_000 && botEvents < 3_500, `bot events ${botEvents}`);
  const truths = events.map(groundTruth);
  assert.equal(truths.filter((t) => t.bot).length, botEvents);
  const newsletter = truths.filter((t) => t.utmSource === 'newsletter' && t.channel === 'Email').length;
  assert.ok(newsletter > 500, `newsletter landings ${newsletter}`);
  assert.ok(new Set(truths.map((t) => t.country)).size >= 40);
  assert.ok(new Set(truths.map((t) => t.path)).size > 1_000);
});
