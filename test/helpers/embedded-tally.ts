import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { startEmbeddedTally, type EmbeddedTally } from '../../src/cli/embedded-tally.ts';
import { cleanupAfter, guardTempDir } from './interrupt.ts';

export interface TestTally extends EmbeddedTally {
  dataDir: string;
}

/** Starts an all-in-one Tally on a free port with its own embedded PostgreSQL; removed after the test. */
export async function startTestTally(t: TestContext, env: Record<string, string> = {}): Promise<TestTally> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-test-'));
  guardTempDir(t, dataDir);
  const config = loadConfig({
    TALLY_DATA_DIR: dataDir,
    SERVER_PORT: '0',
    TALLY_GRPC_PORT: '0',
    TALLY_LOG_LEVEL: 'silent',
    ...env,
  });
  const tally = await startEmbeddedTally(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  cleanupAfter(t, async () => {
    await tally.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { ...tally, dataDir };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

export async function getJson<T = Record<string, unknown>>(
  url: string,
): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}
