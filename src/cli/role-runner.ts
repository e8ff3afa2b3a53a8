import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { Logger } from 'pino';
import { startRoleAuth, type AuthSetup } from '../auth/start-auth.ts';
import type { Config, DatabaseConfig } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { openDatabase, type Database } from '../store/database.ts';

/** A port a role listens on and the setting that chooses it, for a start-up error that says what to change. */
export interface PortSetting {
  host: string;
  port: number;
  /** The environment variable that sets this port: `SERVER_PORT`, `TALLY_GRPC_PORT`, … */
  setting: string;
}

interface Release {
  what: string;
  release: () => unknown;
}

/**
 * The start-up and shutdown of one role (`tally start`, `query`, `ingest`, `process`). A role
 * registers how to release each thing right after opening it (`onStop`), and listens last
 * (`listen`, `listenGrpc`). Releasing runs in reverse order, both when a start-up step throws
 * and on `stop()`; a role that opens storage first, then its consumers and producers, then its
 * servers thereby stops in STYLE.md's order: intake (503, then close) → consumers and producers
 * → PostgreSQL. Every release runs even when one fails.
 */
export class RoleRunner {
  readonly #logger: Logger;
  readonly #releases: Release[] = [];
  #stopping = false;
  #stopped: Promise<void> | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** True once stopping has begun: intake answers 503 from then on. */
  readonly isStopping = (): boolean => this.#stopping;

  /** Registers how to release what was just opened (or is about to start: release must then be safe on a failed start). */
  onStop(what: string, release: () => unknown): void {
    this.#releases.push({ what, release });
  }

  /** Opens a resource and registers its release. */
  async open<T>(what: string, create: () => Promise<T>, release: (opened: T) => unknown): Promise<T> {
    const opened = await create();
    this.onStop(what, () => release(opened));
    return opened;
  }

  /** Opens PostgreSQL (the embedded server, or DATABASE_URL) with the schema up to date; closed last. */
  database(config: DatabaseConfig, options: Parameters<typeof openDatabase>[1]): Promise<Database> {
    return this.open(
      'PostgreSQL',
      () => openDatabase(config, options),
      (db) => db.stop(),
    );
  }

  /**
   * Loads the API keys (kept fresh) from `pool`, none without one; refuses an open API on a
   * non-loopback TALLY_HOST (SECURITY.md).
   */
  auth(config: Config, pool: pg.Pool | undefined): Promise<AuthSetup> {
    return this.open(
      'API keys',
      () => startRoleAuth(config, pool, this.#logger),
      (s) => s.stop(),
    );
  }

  /**
   * Builds the role's Fastify app and registers its close (the app's onClose hooks run then).
   */
  async app(build: () => Promise<FastifyInstance>): Promise<FastifyInstance> {
    return this.open('HTTP server', build, (app) => app.close());
  }

  /** `app.listen`; a port that cannot be bound becomes a TallyError naming the setting. */
  async listen(app: FastifyInstance, at: PortSetting): Promise<string> {
    try {
      return await app.listen({ host: at.host, port: at.port });
    } catch (err) {
      throw bindError(err, at);
    }
  }

  /** Starts a gRPC server (its stop is the caller's to register); bind errors as in `listen`. */
  async listenGrpc<T>(bind: () => Promise<T>, at: PortSetting): Promise<T> {
    try {
      return await bind();
    } catch (err) {
      throw bindError(err, at);
    }
  }

  /** Releases everything in reverse order of opening; idempotent. Rejects with the first release error. */
  stop(): Promise<void> {
    this.#stopped ??= this.#releaseAll();
    return this.#stopped;
  }

  async #releaseAll(): Promise<void> {
    this.#stopping = true;
    const failures: unknown[] = [];
    for (const { what, release } of [...this.#releases].reverse()) {
      try {
        await release();
      } catch (err) {
        this.#logger.error({ err }, `stopping ${what} failed`);
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}

/**
 * Runs a role's start-up: `build` opens, registers and listens through the runner. If it throws,
 * everything it opened is released (reverse order) before the error is rethrown, so a failed
 * start leaves no server, socket, child process or embedded PostgreSQL behind.
 */
export async function runRole<T extends object>(
  logger: Logger,
  build: (runner: RoleRunner) => Promise<T>,
): Promise<T & { stop(): Promise<void> }> {
  const runner = new RoleRunner(logger);
  try {
    const role = await build(runner);
    return { ...role, stop: () => runner.stop() };
  } catch (err) {
    // The start-up error is what the user needs; a release failure is only logged.
    await runner.stop().catch(() => undefined);
    throw err;
  }
}

const BIND_CODES = ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'] as const;

function bindError(err: unknown, at: PortSetting): unknown {
  // Fastify rethrows Node's listen error (err.code); @grpc/grpc-js only names it in its message.
  const errno = (err as { code?: unknown } | undefined)?.code;
  const text = `${typeof errno === 'string' ? errno : ''} ${err instanceof Error ? err.message : ''}`;
  const code = BIND_CODES.find((c) => text.includes(c));
  const where = `${at.host}:${at.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new TallyError(
        'TALLY_PORT_IN_USE',
        `port ${at.port} (${at.setting}) is already in use on ${at.host}; set ${at.setting} to a free port`,
        { cause: err },
      );
    case 'EACCES':
      return new TallyError(
        'TALLY_PORT_IN_USE',
        `no permission to listen on ${where} (${at.setting}); set ${at.setting} to a port above 1023`,
        { cause: err },
      );
    case 'EADDRNOTAVAIL':
      return new TallyError(
        'TALLY_PORT_IN_USE',
        `cannot listen on ${where}: no such local address; set TALLY_HOST to an address of this machine`,
        { cause: err },
      );
    default:
      return err;
  }
}
