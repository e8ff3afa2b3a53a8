import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './report.ts';

/**
 * The capacity model of docs/scaling.md (issue 23): what 10k, 100k and 1M events/s and a billion
 * stored events take, computed from the figures the benchmark measured (bench/results/*.json) and
 * nothing else. Pure: bench/capacity-model.ts reads the files and prints what this renders.
 *
 * Every cost is charged to the whole box the scenario ran on (its `cpus`), load generator, broker
 * and PostgreSQL included, because the harness measures rates, not CPU per process: the costs are
 * upper bounds, and so are the machine counts derived from them.
 */

/** A result file as bench/lib/report.ts writes it. */
export interface ResultFile {
  name: string;
  date: string;
  quick: boolean;
  cpus: number;
  rows: readonly Row[];
}

/** The measured figures the model uses, each with the file it came from. */
export interface Inputs {
  ingest: {
    file: string;
    cpus: number;
    eventsPerSec: number;
    recordBytes: number;
    brokerEventsPerSec: number;
  };
  processor: {
    file: string;
    cpus: number;
    eventsPerSec: number;
    workers: number;
    insertEventsPerSec: number;
    /** The fastest INSERT … SELECT of any run on this box: how loaded the box was in the run used. */
    bestInsertEventsPerSec: number;
  };
  /**
   * Scenario 3's scaling rows (1, 2, 4 instances of one worker each, one group), when a usable
   * run has them: the 1-instance rate is what one worker drains, so what one partition takes.
   */
  scaling?: {
    file: string;
    cpus: number;
    /** Events/s by instance count, ascending. */
    rates: { instances: number; eventsPerSec: number }[];
    insertEventsPerSec: number;
    /** µs of CPU per event with one instance, by kind of process; absent in runs without them. */
    cpuUs?: { process: number; postgres: number };
  };
  storage: {
    file: string;
    events: number;
    rawBytes: number;
    rollupBytes: number;
    ledgerBytes: number;
    queryRssMb: number;
    modelLoadSec: number;
  };
}

/** What the model assumes beyond the measurements (docs/scaling.md says why each). */
export interface Assumptions {
  /** Kafka replication factor (issue 23: 3, with min.insync.replicas=2). */
  replication: number;
  /** Cores of the largest PostgreSQL primary considered. */
  primaryCores: number;
  /** How long Kafka keeps events (Kafka's default log.retention.hours: 7 days). */
  kafkaRetentionDays: number;
}

export const ASSUMPTIONS: Assumptions = { replication: 3, primaryCores: 64, kafkaRetentionDays: 7 };
export const RATES = [10_000, 100_000, 1_000_000] as const;
export const STORED_EVENTS = 1_000_000_000;

const INGEST = '2. batched HTTP ingest';
const PROCESSOR = '3. processor, raw storage on';
const SCALING = '3. processor scaling, ';
const SCALING_ONE = `${SCALING}1 instance`;
const SCALING_CPU = `${SCALING}CPU`;
const LOAD = '8. analytics load';
const STORAGE = '8. analytics storage';

/** The first integer captured by `re` in `text`, commas allowed; throws naming `what` when absent. */
function parseCount(text: string, re: RegExp, what: string): number {
  const m = re.exec(text);
  if (m === null) throw new Error(`capacity model: ${what} not found in "${text}"`);
  return Number(m[1].replaceAll(',', ''));
}

function find(file: ResultFile, prefix: string, metric?: string): Row | undefined {
  return file.rows.find(
    (r) => r.scenario.startsWith(prefix) && (metric === undefined || r.metric.includes(metric)),
  );
}

function need(file: ResultFile, prefix: string, metric?: string): Row {
  const row = find(file, prefix, metric);
  if (row === undefined) throw new Error(`capacity model: ${file.name} has no "${prefix}" row`);
  return row;
}

/** Files a model may use: full runs of the code as it stands (no `--quick`, no copies of a base commit's run). */
export function usable(files: readonly ResultFile[]): ResultFile[] {
  return files.filter((f) => !f.quick && !f.name.includes('-quick') && !f.name.includes('-base-'));
}

/** The newest of `files` holding a row of `prefix`. */
function newest(files: readonly ResultFile[], prefix: string): ResultFile {
  const holding = files.filter((f) => find(f, prefix) !== undefined);
  if (holding.length === 0) throw new Error(`capacity model: no result file holds "${prefix}"`);
  return holding.reduce((a, b) => (b.date > a.date ? b : a));
}

/** A measured figure: JSON writes a rate the harness could not measure (NaN) as null. */
const measured = (n: number | null | undefined): n is number =>
  typeof n === 'number' && Number.isFinite(n) && n > 0;

/**
 * The scaling figures of the newest usable file whose 1-instance rate was measured, or undefined:
 * without it no per-worker rate exists, and the model derives one from scenario 3 as before.
 */
function pickScaling(files: readonly ResultFile[]): Inputs['scaling'] {
  const holding = files.filter((f) => measured(find(f, SCALING_ONE)?.tally));
  if (holding.length === 0) return undefined;
  const f = holding.reduce((a, b) => (b.date > a.date ? b : a));
  const rates = f.rows
    .filter((r) => r.scenario.startsWith(SCALING) && r.unit === 'events/s' && measured(r.tally))
    .map((r) => ({
      instances: parseCount(r.scenario, /scaling, (\d+) instance/, 'the instance count'),
      eventsPerSec: r.tally,
    }))
    .sort((a, b) => a.instances - b.instances);
  const cpu = (kind: string) => find(f, SCALING_CPU, `${kind}: µs of CPU per event with 1 instance,`)?.tally;
  const process = cpu('tally process');
  const postgres = cpu('PostgreSQL');
  return {
    file: f.name,
    cpus: f.cpus,
    rates,
    insertEventsPerSec: required(need(f, SCALING_ONE).baseline, f.name, SCALING_ONE),
    ...(measured(process) && measured(postgres) ? { cpuUs: { process, postgres } } : {}),
  };
}

/** Events in a scenario-8 run's data set, from its load row. */
function analyticsEvents(file: ResultFile): number {
  return parseCount(need(file, LOAD).metric, /\(([\d,]+) events/, 'the data set size');
}

/**
 * The inputs from `files`: ingest and processor from the newest run that measured them; storage
 * from the run of scenario 8 with the largest data set (newest of those), since rollups and read
 * models do not grow in proportion to events and the billion is far from every set measured.
 */
export function pickInputs(all: readonly ResultFile[]): Inputs {
  const files = usable(all);
  const i = newest(files, INGEST);
  const ingestRow = need(i, INGEST);
  const p = newest(files, PROCESSOR);
  const processorRow = need(p, PROCESSOR);
  const withStorage = files.filter((f) => find(f, STORAGE) !== undefined && find(f, LOAD) !== undefined);
  if (withStorage.length === 0) throw new Error(`capacity model: no result file holds "${STORAGE}"`);
  const s = withStorage.reduce((a, b) => {
    const ea = analyticsEvents(a);
    const eb = analyticsEvents(b);
    return eb > ea || (eb === ea && b.date > a.date) ? b : a;
  });
  const rollups = need(s, STORAGE, 'every rollup');
  const ledger = need(s, STORAGE, 'dedup ledger');
  const scaling = pickScaling(files);
  return {
    ingest: {
      file: i.name,
      cpus: i.cpus,
      eventsPerSec: ingestRow.tally,
      recordBytes: parseCount(ingestRow.metric, /records of (\d+) B/, 'the record size'),
      brokerEventsPerSec: required(ingestRow.baseline, i.name, INGEST),
    },
    processor: {
      file: p.name,
      cpus: p.cpus,
      eventsPerSec: processorRow.tally,
      workers: parseCount(processorRow.metric, /NUM_WORKERS=(\d+)/, 'the worker count'),
      insertEventsPerSec: required(processorRow.baseline, p.name, PROCESSOR),
      bestInsertEventsPerSec: Math.max(
        ...files.flatMap((f) =>
          f.rows.filter((r) => r.scenario.startsWith(PROCESSOR)).map((r) => r.baseline ?? 0),
        ),
      ),
    },
    ...(scaling === undefined ? {} : { scaling }),
    storage: {
      file: s.name,
      events: analyticsEvents(s),
      rawBytes: required(rollups.baseline, s.name, STORAGE),
      rollupBytes: rollups.tally,
      ledgerBytes: ledger.tally,
      queryRssMb: need(s, '8. analytics, read model', 'peak RSS').tally,
      modelLoadSec: need(s, '8. analytics, read model', 'seconds').tally,
    },
  };
}

function required(n: number | undefined, file: string, prefix: string): number {
  if (n === undefined) throw new Error(`capacity model: ${file}: "${prefix}" has no baseline`);
  return n;
}

/** Per-core costs, derived from the rates (see the module comment for why they are upper bounds). */
export interface Costs {
  /** µs of one core per event through `tally ingest` into Kafka (the whole box charged). */
  ingestUs: number;
  /** µs of one core per event through `tally process` and PostgreSQL together (the whole box charged). */
  pipelineUs: number;
  /**
   * pipelineUs had the box been as fast as in its best run: the processor's rate scaled by how much
   * faster the same INSERT … SELECT went then. An estimate: it assumes load slowed both alike.
   */
  quietPipelineUs: number;
  /** µs of one PostgreSQL core per event for the dedup key and raw row alone: one backend's INSERT … SELECT. */
  pgFloorUs: number;
  /** Rows PostgreSQL stores per second on one core (2 per event: dedup key and raw row). */
  pgRowsPerCoreSec: number;
  /**
   * Events/s one processor worker drains, so one partition at most (a partition has one consumer):
   * one instance of one worker measured alone when the scaling rows exist, else scenario 3's
   * rate shared among its workers.
   */
  perPartitionEventsPerSec: number;
  /** Bytes/s one broker took from Kafka's own producer tool (one broker, no replicas, shared box). */
  brokerBytesPerSec: number;
  /** Bytes per stored event in PostgreSQL: raw row and indexes, rollups and read models, dedup key. */
  pgBytesPerEvent: number;
}

/** The 1-instance rate of the scaling rows: one worker alone. */
function oneWorker(inputs: Inputs): number | undefined {
  return inputs.scaling?.rates.find((r) => r.instances === 1)?.eventsPerSec;
}

export function costs(inputs: Inputs): Costs {
  const { ingest, processor, storage } = inputs;
  return {
    ingestUs: (ingest.cpus * 1e6) / ingest.eventsPerSec,
    pipelineUs: (processor.cpus * 1e6) / processor.eventsPerSec,
    quietPipelineUs:
      (processor.cpus * 1e6 * processor.insertEventsPerSec) /
      (processor.eventsPerSec * processor.bestInsertEventsPerSec),
    pgFloorUs: 1e6 / processor.insertEventsPerSec,
    pgRowsPerCoreSec: 2 * processor.insertEventsPerSec,
    perPartitionEventsPerSec: oneWorker(inputs) ?? processor.eventsPerSec / processor.workers,
    brokerBytesPerSec: ingest.brokerEventsPerSec * ingest.recordBytes,
    pgBytesPerEvent: storage.rawBytes + storage.rollupBytes + storage.ledgerBytes,
  };
}

/** What one rate of events/s takes. */
export interface Sizing {
  rate: number;
  kafkaMBps: number;
  brokers: number;
  partitions: number;
  processorWorkers: number;
  ingestCores: number;
  /** PostgreSQL cores: at least the bare key and raw inserts, at most the whole pipeline's box. */
  pgCoresMin: number;
  pgCoresMax: number;
  pgRowsPerSec: number;
  pgTBPerDay: number;
  kafkaTBRetained: number;
}

export function sizeFor(rate: number, inputs: Inputs, a: Assumptions = ASSUMPTIONS): Sizing {
  const { ingest, processor, storage } = inputs;
  // Counts divide the rate by measured rates (whole numbers in the results), never by a rounded
  // cost in µs, so a rate that is an exact multiple needs exactly that many, not one more.
  const bytesPerSec = rate * ingest.recordBytes;
  // Every partition needs a worker of its own, and a worker drains at most what one drained alone
  // (or, without that figure, its share of scenario 3's rate).
  const one = oneWorker(inputs);
  const partitions =
    one === undefined
      ? Math.ceil((rate * processor.workers) / processor.eventsPerSec)
      : Math.ceil(rate / one);
  return {
    rate,
    kafkaMBps: bytesPerSec / 1e6,
    // Each record is written by `replication` brokers, and a broker took the measured records/s of
    // the same size; never fewer brokers than replicas.
    brokers: Math.max(a.replication, Math.ceil((rate * a.replication) / ingest.brokerEventsPerSec)),
    partitions,
    processorWorkers: partitions,
    ingestCores: Math.ceil((rate * ingest.cpus) / ingest.eventsPerSec),
    pgCoresMin: Math.ceil(rate / processor.insertEventsPerSec),
    pgCoresMax: Math.ceil((rate * processor.cpus) / processor.eventsPerSec),
    pgRowsPerSec: 2 * rate,
    pgTBPerDay: (rate * 86_400 * (storage.rawBytes + storage.rollupBytes + storage.ledgerBytes)) / 1e12,
    kafkaTBRetained: (bytesPerSec * a.replication * a.kafkaRetentionDays * 86_400) / 1e12,
  };
}

/** What `events` stored events take. */
export interface Stored {
  events: number;
  pgGB: number;
  rawGB: number;
  rollupGB: number;
  ledgerGB: number;
  /** One `tally query` process holding the read model of all of them, scaled from the measured peak RSS. */
  queryRssGB: number;
  modelLoadHours: number;
}

export function stored(events: number, inputs: Inputs): Stored {
  const s = inputs.storage;
  const scale = events / s.events;
  return {
    events,
    pgGB: (events * costs(inputs).pgBytesPerEvent) / 1e9,
    rawGB: (events * s.rawBytes) / 1e9,
    rollupGB: (events * s.rollupBytes) / 1e9,
    ledgerGB: (events * s.ledgerBytes) / 1e9,
    queryRssGB: (s.queryRssMb * scale) / 1e3,
    modelLoadHours: (s.modelLoadSec * scale) / 3600,
  };
}

/** Events/s one primary of `a.primaryCores` cores stores: at most on bare inserts, at least on the whole box's cost. */
export function primaryCeiling(inputs: Inputs, a: Assumptions = ASSUMPTIONS): { min: number; max: number } {
  const { processor } = inputs;
  return {
    min: (a.primaryCores * processor.eventsPerSec) / processor.cpus,
    max: a.primaryCores * processor.insertEventsPerSec,
  };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const dec = (n: number, digits = 1) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const instanceCounts = (s: NonNullable<Inputs['scaling']>) => s.rates.map((r) => r.instances).join(' / ');
const instanceRates = (s: NonNullable<Inputs['scaling']>) =>
  s.rates.map((r) => int(r.eventsPerSec)).join(' / ');

/** The per-core table's lines on one worker: what a partition takes, and the scaling rows when measured. */
function perPartitionLines(inputs: Inputs, c: Costs): string[] {
  const { processor, scaling } = inputs;
  if (scaling === undefined)
    return [
      `| events/s per partition (one worker's share) | ${int(c.perPartitionEventsPerSec)} | ${int(processor.eventsPerSec)} events/s / ${processor.workers} workers |`,
    ];
  const one = oneWorker(inputs)!;
  const speedups = scaling.rates
    .filter((r) => r.instances !== 1)
    .map((r) => `${dec(r.eventsPerSec / one, 2)}× at ${r.instances}`)
    .join(', ');
  const lines = [
    `| events/s per partition (one worker alone) | ${int(c.perPartitionEventsPerSec)} | 1 instance, NUM_WORKERS=1 (scenario 3 scaling) |`,
    `| processor instances of one worker in one group, ${instanceCounts(scaling)}: events/s | ${instanceRates(scaling)} | ${speedups} the 1-instance rate, on ${scaling.cpus} cores; INSERT … SELECT ${int(scaling.insertEventsPerSec)} events/s in that run |`,
  ];
  if (scaling.cpuUs !== undefined)
    lines.push(
      `| \`tally process\`, µs of CPU per event (measured, 1 instance) | ${dec(scaling.cpuUs.process)} | its processes' CPU time over the drain (scenario 3 scaling) |`,
      `| PostgreSQL, µs of CPU per event for Tally's whole write (measured, 1 instance) | ${dec(scaling.cpuUs.postgres)} | the server's processes' CPU time over the same drain |`,
    );
  return lines;
}

/** The Markdown docs/scaling.md embeds between its generated-block comments. */
export function renderModel(inputs: Inputs, a: Assumptions = ASSUMPTIONS): string {
  const c = costs(inputs);
  const { ingest, processor, scaling, storage } = inputs;
  const scalingFile = scaling === undefined ? '' : `, \`${scaling.file}\` (processor scaling)`;
  const lines = [
    `Inputs: \`${ingest.file}\` (ingest), \`${processor.file}\` (processor)${scalingFile}, \`${storage.file}\` (storage, ${int(storage.events)} events).`,
    '',
    '| per-core cost | value | from (measured) |',
    '| --- | ---: | --- |',
    `| ingest, µs of a core per event (upper bound) | ${dec(c.ingestUs)} | ${ingest.cpus} cores / ${int(ingest.eventsPerSec)} events/s (scenario 2) |`,
    `| processor + PostgreSQL, µs of a core per event (upper bound) | ${dec(c.pipelineUs)} | ${processor.cpus} cores / ${int(processor.eventsPerSec)} events/s (scenario 3, raw on) |`,
    `| PostgreSQL, key + raw row only, µs of a core per event | ${dec(c.pgFloorUs)} | 1 backend / ${int(processor.insertEventsPerSec)} events/s (scenario 3's INSERT … SELECT) |`,
    `| PostgreSQL rows/s per core (key + raw row) | ${int(c.pgRowsPerCoreSec)} | 2 × ${int(processor.insertEventsPerSec)} |`,
    `| that INSERT … SELECT against its fastest run on this box | ${int((100 * processor.insertEventsPerSec) / processor.bestInsertEventsPerSec)} % | ${int(processor.bestInsertEventsPerSec)} events/s at best: the lower, the busier the box was |`,
    `| processor + PostgreSQL on a box as fast as at that best (estimate, not used below) | ${dec(c.quietPipelineUs)} | the line above's factor applied to the processor's rate |`,
    ...perPartitionLines(inputs, c),
    `| Kafka bytes per event (uncompressed record) | ${int(ingest.recordBytes)} | scenario 2's record size |`,
    `| one broker, MB/s written (lower bound) | ${dec(c.brokerBytesPerSec / 1e6)} | ${int(ingest.brokerEventsPerSec)} records/s × ${ingest.recordBytes} B (ProducerPerformance) |`,
    `| PostgreSQL bytes per stored event | ${dec(c.pgBytesPerEvent)} | raw + indexes ${dec(storage.rawBytes)}, rollups and read models ${dec(storage.rollupBytes)}, dedup key ${dec(storage.ledgerBytes)} (scenario 8) |`,
    '',
    '| events/s | Kafka MB/s in | brokers (RF 3) | partitions = processor workers | ingest cores | PostgreSQL cores | PostgreSQL rows/s (key + raw) | PostgreSQL TB/day | Kafka TB kept (RF 3, 7 days) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const rate of RATES) {
    const s = sizeFor(rate, inputs, a);
    lines.push(
      `| ${int(rate)} | ${dec(s.kafkaMBps)} | ${s.brokers} | ${int(s.partitions)} | ${int(s.ingestCores)} | ${int(s.pgCoresMin)}–${int(s.pgCoresMax)} | ${int(s.pgRowsPerSec)} | ${dec(s.pgTBPerDay, 2)} | ${dec(s.kafkaTBRetained)} |`,
    );
  }
  const b = stored(STORED_EVENTS, inputs);
  const ceiling = primaryCeiling(inputs, a);
  lines.push(
    '',
    '| 1,000,000,000 stored events | value |',
    '| --- | ---: |',
    `| PostgreSQL, GB (raw ${int(b.rawGB)} + rollups and read models ${int(b.rollupGB)} + dedup keys ${int(b.ledgerGB)}) | ${int(b.pgGB)} |`,
    `| \`tally query\` peak RSS holding them all in its read model, GB | ${dec(b.queryRssGB)} |`,
    `| \`tally query\` read model load at start, hours | ${dec(b.modelLoadHours)} |`,
    '',
    `One primary of ${a.primaryCores} cores stores between ${int(ceiling.min)} and ${int(ceiling.max)} events/s (linear in cores: an upper bound).`,
    `One project measured: ${int(processor.eventsPerSec)} events/s (scenario 3 writes one project)${
      scaling === undefined
        ? ''
        : `; by ${instanceCounts(scaling)} instances of one worker: ${instanceRates(scaling)} events/s`
    }.`,
  );
  return lines.join('\n');
}

/** bench/results/*.json: every result file written so far (the model picks among them). */
export async function resultPaths(
  dir = fileURLToPath(new URL('../results/', import.meta.url)),
): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  return names.map((n) => join(dir, n));
}

/** A lab's output (bench/delete-user-lab.ts and the like), kept beside the runs but not one. */
const isLabRun = (json: { command?: unknown }) =>
  typeof json.command === 'string' && /^node bench\/(?!run\.ts)/.test(json.command);

/** Reads result files as bench/lib/report.ts wrote them; labs' files are passed over. */
export async function loadResults(paths: readonly string[]): Promise<ResultFile[]> {
  const files = await Promise.all(
    paths.map(async (path) => {
      const json = JSON.parse(await readFile(path, 'utf8')) as Partial<ResultFile> & { command?: unknown };
      if (isLabRun(json)) return undefined;
      if (typeof json.date !== 'string' || typeof json.cpus !== 'number' || !Array.isArray(json.rows))
        throw new Error(`capacity model: ${path} is not a bench result (date, cpus, rows)`);
      return {
        name: basename(path),
        date: json.date,
        quick: json.quick === true,
        cpus: json.cpus,
        rows: json.rows,
      };
    }),
  );
  return files.filter((f) => f !== undefined);
}
