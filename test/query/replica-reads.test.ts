import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import pino from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import type { Answerers } from '../../src/query/answerers.ts';
import { memoryCacheStore, QueryCache, type CacheStore } from '../../src/query/cache.ts';
import { QueryService } from '../../src/query/query-service.ts';
import { openedAt, ReplicaReads, type ReadInfo } from '../../src/query/replica-reads.ts';
import type { Queryable } from '../../src/store/read-snapshot.ts';

const logger = pino({ level: 'silent' });

/**
 * The lag contract (issue 23, replica-reads.ts), written from its text: a replica that is not in
 * recovery, or holds at least the version this process knows, is 0 behind; otherwise it may miss
 * everything committed since the last transaction it replayed, rounded up to the ms, unknown
 * (infinite) when it replayed none.
 */
function referenceLag(
  row: { version: number | null; standby: boolean; since_replay_ms: number | null },
  known: number,
) {
  const held = row.version ?? 0;
  if (!row.standby || held >= known) return 0;
  if (row.since_replay_ms === null) return Infinity;
  return row.since_replay_ms <= 0 ? 0 : Math.ceil(row.since_replay_ms);
}

test('openedAt: the version read on the snapshot, and the lag the contract gives', () => {
  fc.assert(
    fc.property(
      fc.record({
        version: fc.option(fc.nat(1000), { nil: null }),
        standby: fc.boolean(),
        since_replay_ms: fc.option(fc.double({ min: -5, max: 1e7, noNaN: true }), { nil: null }),
      }),
      fc.nat(1000),
      (row, known) => {
        const opened = openedAt(row, known);
        assert.equal(opened.version, row.version ?? 0);
        assert.equal(opened.lagMs, referenceLag(row, known));
      },
    ),
  );
});

/** A Redis-like store over a Map (QueryCache then keeps a near cache in front of it too). */
function mapStore(): CacheStore {
  const data = new Map<string, string>();
  return {
    kind: 'redis',
    get: (key) => Promise.resolve(data.get(key)),
    set: (key, value) => {
      data.set(key, value);
      return Promise.resolve();
    },
    purge: () => Promise.resolve(0),
    health: { name: 'redis', check: () => Promise.resolve('ok') },
    close: () => Promise.resolve(),
  };
}

/** Data of version v answers `v`: an answer says which version it was computed from. */
interface World {
  primary: number;
  replica: number;
  /** The version this process knows (the primary's notifications reach it late). */
  known: number;
  replicaDown: boolean;
  sinceReplayMs: number;
}

/**
 * A replica's pool: each snapshot reads `world.replica` as its version and as its data, and the
 * time since its last replay as the state row says it. Down: every connection fails.
 */
function replicaPool(world: World): pg.Pool {
  const client = {
    query(sql: string) {
      if (sql.includes('pg_is_in_recovery')) {
        return Promise.resolve({
          rows: [{ version: world.replica, standby: true, since_replay_ms: world.sinceReplayMs }],
        });
      }
      if (sql === 'SELECT data') return Promise.resolve({ rows: [{ v: world.replica }] });
      return Promise.resolve({ rows: [] });
    },
    release() {},
  };
  return {
    connect: () => (world.replicaDown ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve(client)),
  } as unknown as pg.Pool;
}

/** Services whose summary is the version of the data they read. */
function answerers(read: () => Promise<number>): Answerers {
  return { stats: { summary: async () => ({ v: await read() }) } } as unknown as Answerers;
}

/** A version from `from` to `to`, both included, `share` of the way. */
const between = (from: number, to: number, share: number) =>
  from + Math.min(to - from, Math.floor(share * (to - from + 1)));

const step = fc.oneof(
  fc.constant({ kind: 'commit' as const }),
  fc.record({ kind: fc.constant('replay' as const), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('notify' as const), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('down' as const), down: fc.boolean() }),
  fc.record({
    kind: fc.constant('ask' as const),
    strong: fc.boolean(),
    sinceReplayMs: fc.integer({ min: 0, max: 200 }),
    question: fc.integer({ min: 1, max: 2 }),
  }),
);

test('replica answers through the cache: never older than the known version but from a replica within the bound, and then saying so', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(step, { minLength: 5, maxLength: 60, size: 'max' }),
      fc.constantFrom(0, 100, 10_000),
      fc.boolean(),
      async (steps, maxLagMs, redisLike) => {
        const world: World = { primary: 0, replica: 0, known: 0, replicaDown: false, sinceReplayMs: 0 };
        const cache = new QueryCache({
          store: redisLike ? mapStore() : memoryCacheStore(100),
          version: () => Promise.resolve(world.known),
          metrics: createMetrics(),
          ttlSec: 60,
          logger,
        });
        // `retryMs: 0`: a replica back up is asked again at once (the property is about answers).
        const reads = new ReplicaReads({
          pool: replicaPool(world),
          maxLagMs,
          logger,
          metrics: createMetrics(),
          retryMs: 0,
        });
        const service = new QueryService({
          ...answerers(() => Promise.resolve(world.primary)),
          cache,
          replica: {
            reads,
            answerers: (db: Queryable) =>
              answerers(async () => {
                const { rows } = await db.query<{ v: number }>('SELECT data');
                return rows[0].v;
              }),
          },
          now: () => Date.parse('2025-03-10T00:00:00Z'),
        });
        for (const s of steps) {
          if (s.kind === 'commit') world.primary += 1;
          else if (s.kind === 'replay') world.replica = between(world.replica, world.primary, s.share);
          else if (s.kind === 'notify') world.known = between(world.known, world.primary, s.share);
          else if (s.kind === 'down') world.replicaDown = s.down;
          else {
            world.sinceReplayMs = s.sinceReplayMs;
            const info: ReadInfo = { source: 'cache', lagMs: -1 };
            const input = { to: `2025-03-0${s.question}`, ...(s.strong ? { consistency: 'strong' } : {}) };
            const { v } = (await service.summary('p', input, info)) as unknown as { v: number };
            const lag = world.replica >= world.known ? 0 : s.sinceReplayMs;
            if (info.source === 'replica') {
              assert.ok(!s.strong && !world.replicaDown, 'strong and a replica down go to the primary');
              assert.equal(v, world.replica, 'the replica answers its own data');
              assert.equal(info.lagMs, lag, 'and says how far behind it may be');
              assert.ok(info.lagMs <= maxLagMs, 'within the bound');
            } else {
              // Cache or primary: as fresh as the version this process knows (no lagging answer outlives it).
              assert.ok(v >= world.known, `${info.source} answered ${v} while ${world.known} is known`);
              assert.equal(info.lagMs, 0);
              // A replica within the bound would have answered a miss.
              if (info.source === 'primary' && !s.strong && !world.replicaDown) assert.ok(lag > maxLagMs);
            }
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});
