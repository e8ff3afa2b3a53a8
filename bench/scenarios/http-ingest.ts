import autocannon from 'autocannon';
import { fileURLToPath } from 'node:url';
import { findFreePort } from '../../src/util/free-port.ts';
import { benchEvent } from '../lib/events.ts';
import { startService, type Service } from '../lib/processes.ts';
import type { Row } from '../lib/report.ts';
import type { BenchContext } from '../run.ts';

const BASELINE = fileURLToPath(new URL('../baseline-server.ts', import.meta.url));
const WINDOW = Date.parse('2020-06-01T00:00:00Z');

/** Scenario 1's load: single-event POST /v1/events from `connections` connections for `duration` s, fresh event_ids. */
export function singleEventLoad(
  url: string,
  connections: number,
  duration: number,
): ReturnType<typeof autocannon> {
  return autocannon({
    url: `${url}/v1/events`,
    connections,
    duration,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({
          ...req,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(benchEvent(WINDOW + Math.floor(Math.random() * 3_600_000))),
        }),
      },
    ],
  });
}

/** req/s of single-event POST /v1/events, after a warm-up, with fresh event_ids. */
async function singleEventRate(url: string, ctx: BenchContext, warmupSec = ctx.warmupSec): Promise<number> {
  await singleEventLoad(url, ctx.connections, warmupSec);
  const result = await singleEventLoad(url, ctx.connections, ctx.measureSec);
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx answers and ${result.errors} errors under load`);
  }
  return result.requests.average;
}

/** Scenario 1's baseline: a bare Fastify app answering 202 to the same requests, same load. */
export async function bareFastifyRate(ctx: BenchContext): Promise<number> {
  const port = await findFreePort();
  const bare = await startService({
    name: 'bare Fastify',
    script: BASELINE,
    args: [],
    env: { PORT: String(port) },
    port,
  });
  try {
    return await singleEventRate(bare.url, ctx);
  } finally {
    await bare.stop();
  }
}

/** Scenario 1: single-event HTTP ingest into `tally` vs the bare Fastify rate measured in this run. */
export async function singleEventIngest(
  ctx: BenchContext,
  tally: Service,
  label: string,
  baseline: number,
  /** Issue 24's target for this way in, of the baseline. */
  targetPercent: number,
  /** Longer than the usual warm-up where a service behind Tally needs it (a fresh Kafka broker's JIT). */
  warmupSec = ctx.warmupSec,
): Promise<Row> {
  const rate = await singleEventRate(tally.url, ctx, warmupSec);
  return {
    scenario: `1. single-event HTTP ingest (${label})`,
    metric: `requests/s, ${ctx.connections} connections`,
    tally: Math.round(rate),
    baseline: Math.round(baseline),
    baselineName: 'bare Fastify 202',
    target: `≥ ${targetPercent} % of baseline`,
    unit: 'req/s',
  };
}
