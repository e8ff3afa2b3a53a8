import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { assertSafeBinding, type AuthDeps } from './http-auth.ts';
import { ApiKeyStore } from '../store/api-keys-store.ts';
import { KeySet } from './key-set.ts';

export interface StartAuthOptions {
  /** PostgreSQL holding `tally.api_keys`; undefined = no keys possible (open, loopback-only). */
  pool: pg.Pool | undefined;
  logger: Logger;
  rateLimitPerSec: number;
  /** The address the role's servers will bind. */
  host: string;
  allowUnauthenticated: boolean;
  refreshMs?: number;
}

export interface AuthSetup {
  /** Pass to `buildApp({ auth })`. */
  auth: AuthDeps;
  keys: KeySet;
  stop(): void;
}

const DEFAULT_REFRESH_MS = 2000;

/**
 * For any role that serves the API: loads the API keys (kept fresh every ~2 s) and refuses
 * to serve the open API on a non-loopback address (throws TALLY_CONFIG_INVALID).
 */
export async function startAuth(options: StartAuthOptions): Promise<AuthSetup> {
  const { pool } = options;
  const keys = new KeySet({
    load: pool ? () => new ApiKeyStore(pool).loadAll() : () => Promise.resolve([]),
    logger: options.logger,
    refreshMs: options.refreshMs ?? DEFAULT_REFRESH_MS,
  });
  await keys.start();
  try {
    assertSafeBinding(options.host, keys, options.allowUnauthenticated);
  } catch (err) {
    keys.stop();
    throw err;
  }
  return { auth: { keys, rateLimitPerSec: options.rateLimitPerSec }, keys, stop: () => keys.stop() };
}

/** `startAuth` as every role runs it, from the loaded config. */
export function startRoleAuth(config: Config, pool: pg.Pool | undefined, logger: Logger): Promise<AuthSetup> {
  return startAuth({
    pool,
    logger,
    rateLimitPerSec: config.raw.TALLY_RATE_LIMIT,
    host: config.host,
    allowUnauthenticated: config.raw.TALLY_ALLOW_UNAUTHENTICATED,
  });
}
