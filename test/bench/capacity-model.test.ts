import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ASSUMPTIONS,
  costs,
  loadResults,
  pickInputs,
  primaryCeiling,
  renderModel,
  resultPaths,
  sizeFor,
  stored,
  type Inputs,
  type ResultFile,
} from '../../bench/lib/capacity-model.ts';
import { scalingRows } from '../../bench/scenarios/processor-scaling.ts';

const FIXTURES = new URL('fixtures/capacity-model/', import.meta.url);

async function fixtureInputs(): Promise<Inputs> {
  return pickInputs(await loadResults(await resultPaths(FIXTURES.pathname)));
}

test('the model takes ingest and processor from the newest full run, storage from the largest set', async () => {
  const inputs = await fixtureInputs();
  // Newer files exist for each figure: a --quick run and a copy of a base commit's run (ignored),
  // a 1 M storage run (smaller than the 10 M one).
  assert.deepEqual(inputs, {
    ingest: {
      file: '2026-01-02T00-00-00-000Z.json',
      cpus: 2,
      eventsPerSec: 100_000,
      recordBytes: 250,
      brokerEventsPerSec: 300_000,
    },
    processor: {
      file: '2026-01-02T00-00-00-000Z.json',
      cpus: 2,
      eventsPerSec: 10_000,
      workers: 2,
      insertEventsPerSec: 25_000,
      bestInsertEventsPerSec: 99_999,
    },
    storage: {
      file: '2026-01-02T00-00-00-000Z.json',
      events: 10_000_000,
      rawBytes: 500,
      rollupBytes: 300,
      ledgerBytes: 100,
      queryRssMb: 1000,
      modelLoadSec: 100,
    },
  });
});

test('the fixture sized by hand: 10k and 1M events/s, a billion stored events, a 64-core primary', async () => {
  const inputs = await fixtureInputs();
  // 1M events/s: 2 workers drain 10,000/s, 5,000 each → 200 partitions; 3 × 1M records over
  // 300,000/s a broker → 10 brokers; 2 cores per 100,000/s → 20; 1M / 25,000 → 40 to 2 cores per
  // 10,000/s → 200; 250 B × 1M = 250 MB/s.
  assert.deepEqual(
    { ...sizeFor(1_000_000, inputs), pgTBPerDay: undefined, kafkaTBRetained: undefined },
    {
      rate: 1_000_000,
      kafkaMBps: 250,
      brokers: 10,
      partitions: 200,
      processorWorkers: 200,
      ingestCores: 20,
      pgCoresMin: 40,
      pgCoresMax: 200,
      pgRowsPerSec: 2_000_000,
      pgTBPerDay: undefined,
      kafkaTBRetained: undefined,
    },
  );
  const small = sizeFor(10_000, inputs);
  assert.deepEqual(
    [small.brokers, small.partitions, small.ingestCores, small.pgCoresMin, small.pgCoresMax],
    [3, 2, 1, 1, 2],
  );
  // 900 B/event × 86,400 s × 10,000/s; 250 B × 3 replicas × 7 days × 10,000/s.
  assert.ok(Math.abs(small.pgTBPerDay - 0.7776) < 1e-9);
  assert.ok(Math.abs(small.kafkaTBRetained - 4.536) < 1e-9);
  const billion = stored(1_000_000_000, inputs);
  assert.equal(billion.pgGB, 900);
  assert.equal(billion.queryRssGB, 100);
  assert.ok(Math.abs(billion.modelLoadHours - 10_000 / 3600) < 1e-9);
  assert.deepEqual(primaryCeiling(inputs), { min: 320_000, max: 1_600_000 });
  // 2 cores over 10,000 events/s, with the box 99,999 / 25,000 times faster: 50.0005 µs.
  assert.ok(Math.abs(costs(inputs).quietPipelineUs - (2e6 * 25_000) / (10_000 * 99_999)) < 1e-9);
  assert.equal(costs(inputs).pipelineUs, 200);
});

/** Scenario 3's scaling rows as the scenario writes them, for 1, 2 and 4 instances, through JSON (NaN → null). */
function scalingResult(day: number, quick: boolean, rates: readonly number[]): ResultFile {
  const date = `2026-01-${String(day).padStart(2, '0')}T00:00:00.000Z`;
  const cpuUs = { process: 120, postgres: 80, broker: 10 };
  const rows = scalingRows(
    1_000_000,
    25_000,
    [1, 2, 4].map((instances, i) => ({ instances, rate: rates[i], cpuUs })),
  );
  return {
    name: `${date.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`,
    date,
    quick,
    cpus: 2,
    rows: JSON.parse(JSON.stringify(rows)) as ResultFile['rows'],
  };
}

test("the scaling rows give one worker's rate per partition, from the newest run that measured it", async () => {
  const fixtures = await loadResults(await resultPaths(FIXTURES.pathname));
  const without = pickInputs(fixtures);
  const inputs = pickInputs([
    ...fixtures,
    scalingResult(6, false, [4_000, 7_000, 9_000]),
    // Newer, but a --quick run, and a run whose 1-instance drain measured nothing: both passed over.
    scalingResult(7, true, [1_000, 1_000, 1_000]),
    scalingResult(8, false, [Number.NaN, 5_000, 5_000]),
  ]);
  assert.deepEqual(inputs, {
    ...without,
    scaling: {
      file: '2026-01-06T00-00-00-000Z.json',
      cpus: 2,
      rates: [
        { instances: 1, eventsPerSec: 4_000 },
        { instances: 2, eventsPerSec: 7_000 },
        { instances: 4, eventsPerSec: 9_000 },
      ],
      insertEventsPerSec: 25_000,
      cpuUs: { process: 120, postgres: 80 },
    },
  });
  // One worker alone drains 4,000/s: 1M events/s takes 250 partitions, against 200 from scenario
  // 3's 10,000/s over 2 workers; nothing else moves.
  assert.equal(costs(without).perPartitionEventsPerSec, 5_000);
  assert.equal(costs(inputs).perPartitionEventsPerSec, 4_000);
  assert.equal(sizeFor(1_000_000, inputs).partitions, 250);
  assert.deepEqual(
    { ...sizeFor(1_000_000, inputs), partitions: 0, processorWorkers: 0 },
    { ...sizeFor(1_000_000, without), partitions: 0, processorWorkers: 0 },
  );
  const text = renderModel(inputs);
  assert.match(text, /\| events\/s per partition \(one worker alone\) \| 4,000 \|/);
  assert.match(
    text,
    /\| 4,000 \/ 7,000 \/ 9,000 \| 1\.75× at 2, 2\.25× at 4 the 1-instance rate, on 2 cores;/,
  );
  assert.match(text, /µs of CPU per event \(measured, 1 instance\) \| 120\.0 \|/);
  assert.match(text, /by 1 \/ 2 \/ 4 instances of one worker: 4,000 \/ 7,000 \/ 9,000 events\/s\.$/);
  assert.doesNotMatch(renderModel(without), /scaling|one worker alone/);
});

/** Inputs from measured figures as the results hold them (rates rounded to whole events/s). */
const arbInputs = fc.record({
  ingest: fc.record({
    file: fc.constant('i.json'),
    cpus: fc.integer({ min: 1, max: 64 }),
    eventsPerSec: fc.integer({ min: 1, max: 2_000_000 }),
    recordBytes: fc.integer({ min: 1, max: 10_000 }),
    brokerEventsPerSec: fc.integer({ min: 1, max: 5_000_000 }),
  }),
  processor: fc.record({
    file: fc.constant('p.json'),
    cpus: fc.integer({ min: 1, max: 64 }),
    eventsPerSec: fc.integer({ min: 1, max: 1_000_000 }),
    workers: fc.integer({ min: 1, max: 64 }),
    insertEventsPerSec: fc.integer({ min: 1, max: 1_000_000 }),
    bestInsertEventsPerSec: fc.integer({ min: 1, max: 1_000_000 }),
  }),
  scaling: fc.option(
    fc.record({
      file: fc.constant('x.json'),
      cpus: fc.integer({ min: 1, max: 64 }),
      rates: fc
        .tuple(...[1, 2, 4].map(() => fc.integer({ min: 1, max: 1_000_000 })))
        .map((r) => r.map((eventsPerSec, i) => ({ instances: 2 ** i, eventsPerSec }))),
      insertEventsPerSec: fc.integer({ min: 1, max: 1_000_000 }),
    }),
    { nil: undefined },
  ),
  storage: fc.record({
    file: fc.constant('s.json'),
    events: fc.integer({ min: 1, max: 100_000_000 }),
    rawBytes: fc.double({ min: 1, max: 5000, noNaN: true }),
    rollupBytes: fc.double({ min: 0, max: 5000, noNaN: true }),
    ledgerBytes: fc.double({ min: 0, max: 1000, noNaN: true }),
    queryRssMb: fc.integer({ min: 1, max: 100_000 }),
    modelLoadSec: fc.double({ min: 0.1, max: 10_000, noNaN: true }),
  }),
});

/**
 * n is the fewest machines for `rate` when each carries `perBox` events/s on `boxes` of them:
 * enough, and one fewer is not (nor fewer than `floor`). In integers, so the check itself never rounds.
 */
function fewest(n: number, rate: number, perBox: number, boxes = 1, floor = 1): boolean {
  const carries = (k: number) => BigInt(k) * BigInt(perBox) >= BigInt(rate) * BigInt(boxes);
  return Number.isInteger(n) && n >= floor && carries(n) && (n === floor || !carries(n - 1));
}

test('every count is the fewest that carries the rate, from the measured rates (property)', () => {
  fc.assert(
    fc.property(arbInputs, fc.integer({ min: 1, max: 10_000_000 }), (inputs, rate) => {
      const s = sizeFor(rate, inputs);
      const { ingest, processor } = inputs;
      // A worker drains what one drained alone, else its share of the measured rate; one partition per worker.
      const alone = inputs.scaling?.rates[0].eventsPerSec;
      assert.ok(
        alone === undefined
          ? fewest(s.partitions, rate, processor.eventsPerSec, processor.workers)
          : fewest(s.partitions, rate, alone),
        `partitions ${s.partitions}`,
      );
      assert.equal(s.processorWorkers, s.partitions);
      // A broker writes what Kafka's producer tool got through one broker; each record `replication` times.
      assert.ok(
        fewest(
          s.brokers,
          rate * ASSUMPTIONS.replication,
          ingest.brokerEventsPerSec,
          1,
          ASSUMPTIONS.replication,
        ),
        `brokers ${s.brokers}`,
      );
      // A core carries the box's rate divided by the box's cores.
      assert.ok(fewest(s.ingestCores, rate, ingest.eventsPerSec, ingest.cpus), `ingest ${s.ingestCores}`);
      assert.ok(fewest(s.pgCoresMax, rate, processor.eventsPerSec, processor.cpus), `pg max ${s.pgCoresMax}`);
      assert.ok(fewest(s.pgCoresMin, rate, processor.insertEventsPerSec), `pg min ${s.pgCoresMin}`);
      assert.equal(s.pgRowsPerSec, 2 * rate);
      assert.ok(Math.abs(s.kafkaMBps * 1e6 - rate * ingest.recordBytes) <= 1e-6 * rate * ingest.recordBytes);
    }),
    { numRuns: 2000 },
  );
});

test('stored events and the primary scale linearly from the measured figures (property)', () => {
  fc.assert(
    fc.property(arbInputs, fc.integer({ min: 1, max: 10_000_000_000 }), (inputs, events) => {
      const b = stored(events, inputs);
      const s = inputs.storage;
      const near = (a: number, e: number) => Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e));
      assert.ok(near(b.pgGB * 1e9, events * (s.rawBytes + s.rollupBytes + s.ledgerBytes)));
      assert.ok(near(b.rawGB + b.rollupGB + b.ledgerGB, b.pgGB));
      // Twice the events, twice the memory and the load: per event as measured.
      assert.ok(near((b.queryRssGB * 1e3) / events, s.queryRssMb / s.events));
      assert.ok(near((b.modelLoadHours * 3600) / events, s.modelLoadSec / s.events));
      const c = primaryCeiling(inputs);
      const p = inputs.processor;
      assert.ok(near(c.min, ASSUMPTIONS.primaryCores * (p.eventsPerSec / p.cpus)));
      assert.ok(near(c.max, ASSUMPTIONS.primaryCores * p.insertEventsPerSec));
      // On a box as fast as at the INSERT's best, the processor goes faster by that same factor.
      const k = costs(inputs);
      assert.ok(
        near(
          k.quietPipelineUs * p.eventsPerSec * (p.bestInsertEventsPerSec / p.insertEventsPerSec),
          p.cpus * 1e6,
        ),
      );
      assert.ok(near(k.pipelineUs * p.eventsPerSec, p.cpus * 1e6));
    }),
  );
});

test('the newest usable file wins, whatever the order and the unusable files (property)', () => {
  const arbFile = fc.record({
    day: fc.integer({ min: 1, max: 28 }),
    quick: fc.boolean(),
    base: fc.boolean(),
    rate: fc.integer({ min: 1, max: 1_000_000 }),
  });
  fc.assert(
    fc.property(fc.uniqueArray(arbFile, { minLength: 1, maxLength: 8, selector: (f) => f.day }), (specs) => {
      const files: ResultFile[] = specs.map((f) => {
        const date = `2026-02-${String(f.day).padStart(2, '0')}T00:00:00.000Z`;
        return {
          name: `${date}${f.base ? '-base-abc1234' : ''}.json`,
          date,
          quick: f.quick,
          cpus: 2,
          rows: [
            {
              scenario: '2. batched HTTP ingest (tally ingest → Kafka)',
              metric: 'baseline: 10 records of 200 B',
              tally: f.rate,
              baseline: 1000,
              unit: 'events/s',
            },
            {
              scenario: '3. processor, raw storage on',
              metric: 'NUM_WORKERS=2',
              tally: f.rate,
              baseline: 1000,
              unit: 'events/s',
            },
            { scenario: '8. analytics load', metric: '(1,000 events;', tally: 1, unit: 'events/s' },
            { scenario: '8. analytics, read model', metric: 'seconds', tally: 1, unit: 's' },
            { scenario: '8. analytics, read model', metric: 'peak RSS', tally: 1, unit: 'MB' },
            {
              scenario: '8. analytics storage',
              metric: 'every rollup',
              tally: 1,
              baseline: 1,
              unit: 'B/event',
            },
            {
              scenario: '8. analytics storage',
              metric: 'dedup ledger',
              tally: 1,
              baseline: 1,
              unit: 'B/event',
            },
          ],
        };
      });
      const usable = specs.filter((f) => !f.quick && !f.base).sort((a, b) => b.day - a.day);
      if (usable.length === 0) {
        assert.throws(() => pickInputs(files), /no result file holds/);
        return;
      }
      const inputs = pickInputs(files);
      assert.deepEqual(pickInputs([...files].reverse()), inputs);
      assert.equal(inputs.ingest.eventsPerSec, usable[0].rate);
      assert.equal(inputs.processor.eventsPerSec, usable[0].rate);
      assert.equal(inputs.storage.file, files[specs.indexOf(usable[0])].name);
    }),
  );
});

test("docs/scaling.md's generated block is what bench/capacity-model.ts prints for the committed results", async () => {
  const doc = await readFile(new URL('../../docs/scaling.md', import.meta.url), 'utf8');
  const m =
    /<!-- capacity-model:begin -->\n<!-- prettier-ignore-start -->\n([\s\S]*?)\n<!-- prettier-ignore-end -->\n<!-- capacity-model:end -->/.exec(
      doc,
    );
  assert.ok(m, 'docs/scaling.md has no capacity-model block');
  const printed = renderModel(pickInputs(await loadResults(await resultPaths())));
  assert.equal(m[1], printed, 'run `node bench/capacity-model.ts` and paste its output into docs/scaling.md');
});
