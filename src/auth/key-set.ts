import type { Logger } from 'pino';
import { hashKey, looksLikeKey, type Scope, type StoredKey } from './api-keys.ts';

export interface KeyGrant {
  keyId: number;
  project: string;
  scope: Scope;
}

export interface KeySetDeps {
  load: () => Promise<StoredKey[]>;
  logger: Logger;
  /** How often the set is reloaded from PostgreSQL, so `tally keys create|revoke` apply quickly. */
  refreshMs: number;
}

/**
 * The API keys, cached in memory and reloaded every `refreshMs`. Lookups never touch the
 * database. If a reload fails (PostgreSQL down) the last good set stays in force.
 */
export class KeySet {
  readonly #deps: KeySetDeps;
  #byHash = new Map<string, StoredKey>();
  #anyKeys = false;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(deps: KeySetDeps) {
    this.#deps = deps;
  }

  /** Loads the keys (failing if PostgreSQL cannot be read) and starts the periodic reload. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer ??= setInterval(() => {
      this.refresh().catch((err: unknown) =>
        this.#deps.logger.warn({ err }, 'could not reload API keys; keeping the previous set'),
      );
    }, this.#deps.refreshMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reloads now (concurrent callers share one query). */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const keys = await this.#deps.load();
        this.#byHash = new Map(keys.map((k) => [k.hashHex, k]));
        this.#anyKeys = keys.length > 0;
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  /**
   * True once any key was ever created, revoked ones included: revoking the last key must not
   * silently open the API again.
   */
  get authRequired(): boolean {
    return this.#anyKeys;
  }

  /** What `key` grants, or undefined for an unknown, malformed or revoked key. */
  lookup(key: string): KeyGrant | undefined {
    if (!looksLikeKey(key)) return undefined;
    // TRICKY: a Map lookup by hash is not constant-time, but what it could leak is how many
    // leading characters of the *hash* matched, which says nothing usable about a 256-bit key.
    const stored = this.#byHash.get(hashKey(key).toString('hex'));
    if (!stored || stored.revoked) return undefined;
    return { keyId: stored.id, project: stored.project, scope: stored.scope };
  }
}
