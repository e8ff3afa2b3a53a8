import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import rateLimit from '@fastify/rate-limit';
import { TallyError } from '../errors/tally-error.ts';
import type { Scope } from './api-keys.ts';
import { authorize, DEFAULT_PROJECT } from './authorize.ts';
import type { KeyGrant, KeySet } from './key-set.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key that authenticated this request; null on open routes or without keys. */
    tallyAuth: KeyGrant | null;
  }
}

export interface AuthDeps {
  keys: KeySet;
  /** Requests per second per API key (per client address for requests without a key). */
  rateLimitPerSec: number;
  /**
   * Shared counters, so the limit holds across all replicas (distributed roles pass their
   * Redis); without it each instance counts for itself. Redis errors let requests through.
   */
  rateLimitRedis?: Redis;
  /** The window `rateLimitPerSec` counts over: 1000 ms unless a test stretches it. */
  rateLimitWindowMs?: number;
}

// Routes anyone may call: probes and metrics, the API docs, the dashboard page with its static
// assets, and the tracker script. The dashboard's data calls carry the user's read key.
const OPEN_ROUTES = new Set(['/health', '/ready', '/metrics', '/', '/dashboard/:name', '/tally.js']);
const OPS_ROUTES = new Set(['/health', '/ready', '/metrics']);
// The ingest routes: Tally's own and the earlier systems' (src/compat/ingest-routes.ts).
const WRITE_ROUTES = new Set(['/v1/events', '/activity', '/ingest', '/v1/collect']);
// Deleting and exporting users, and their audit (src/users/routes.ts): admin keys only, never
// open. Method and route, since GET /v1/users/:user_id/events is a read.
const ADMIN_ROUTES = new Set([
  'DELETE /v1/users/:user_id',
  'GET /v1/users/:user_id/export',
  'GET /v1/admin/audit',
]);
// TRICKY: navigator.sendBeacon cannot set headers, so the beacon route also takes the key as
// `?key=` (a write key: it can only add events). Nowhere else: keys in URLs end up in logs.
const QUERY_KEY_ROUTES = new Set(['/v1/collect']);

function routeOf(request: FastifyRequest): string | undefined {
  return request.routeOptions.url;
}

function isOpen(request: FastifyRequest): boolean {
  // CORS preflights never carry credentials; @fastify/cors answers them.
  if (request.method === 'OPTIONS') return true;
  const route = routeOf(request);
  if (route === undefined) return false;
  return OPEN_ROUTES.has(route) || route === '/docs' || route.startsWith('/docs/');
}

function requiredScope(request: FastifyRequest): Scope {
  const route = routeOf(request);
  if (route === undefined) return 'read';
  if (request.method === 'POST' && WRITE_ROUTES.has(route)) return 'write';
  return ADMIN_ROUTES.has(`${request.method} ${route}`) ? 'admin' : 'read';
}

function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const route = routeOf(request);
  if (route !== undefined && QUERY_KEY_ROUTES.has(route)) {
    const key = (request.query as Record<string, unknown> | undefined)?.key;
    if (typeof key === 'string' && key !== '') return key;
  }
  return undefined;
}

/** The project a request reads or writes: its key's project, `default` while no key exists. */
export function projectOf(request: FastifyRequest): string {
  return request.tallyAuth?.project ?? DEFAULT_PROJECT;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * API-key authentication and per-key rate limiting for every route registered afterwards.
 * Once any key exists, API routes need `Authorization: Bearer <key>` or `X-Api-Key` (401
 * without a valid one, 403 with a key of the wrong scope); the key decides the project.
 * The admin routes answer 403 while no key exists. Call before registering routes.
 */
export async function installAuth(app: FastifyInstance, deps: AuthDeps): Promise<void> {
  app.decorateRequest('tallyAuth', null);
  app.addHook('onRequest', async (request, reply) => {
    if (isOpen(request)) return;
    const scope = requiredScope(request);
    if (!deps.keys.authRequired && scope !== 'admin') return;
    const result = authorize(deps.keys, presentedKey(request), scope);
    if (!result.ok) {
      if (result.code === 'TALLY_UNAUTHORIZED') void reply.header('www-authenticate', 'Bearer realm="tally"');
      const where = `${request.method} ${routeOf(request) ?? request.url.split('?')[0]}`;
      throw new TallyError(
        result.code,
        result.code === 'TALLY_FORBIDDEN' ? `${result.message} for ${where}` : result.message,
      );
    }
    request.tallyAuth = { keyId: result.keyId ?? 0, project: result.project, scope };
  });

  // Runs after the auth hook (route-level hooks follow app-level ones), so the key is known.
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: deps.rateLimitPerSec,
    timeWindow: deps.rateLimitWindowMs ?? 1000,
    ...(deps.rateLimitRedis
      ? { redis: deps.rateLimitRedis, nameSpace: 'tally-rate-limit:', skipOnError: true }
      : {}),
    keyGenerator: (request) => (request.tallyAuth ? `key:${request.tallyAuth.keyId}` : `ip:${request.ip}`),
    // Probes must never be throttled; nor local tools talking to an unauthenticated instance
    // (which is bound to loopback unless TALLY_ALLOW_UNAUTHENTICATED says otherwise).
    allowList: (request) => {
      const route = routeOf(request);
      if (route !== undefined && OPS_ROUTES.has(route)) return true;
      return request.tallyAuth === null && isLoopback(request.ip);
    },
    errorResponseBuilder: (_request, context) =>
      new TallyError(
        'TALLY_RATE_LIMITED',
        `rate limit of ${context.max} requests per second exceeded; retry after ${context.after}`,
      ),
  });
}

/** Loopback addresses: binding one of these exposes Tally to this machine only. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || isLoopback(host);
}

/**
 * With no keys configured Tally serves one `default` project without auth (README.md, "API keys
 * and projects"), so it must not be reachable from the network. Throws (refusing to start) when
 * `host` is not a loopback address and no key exists, unless the operator explicitly allowed it.
 */
export function assertSafeBinding(host: string, keys: KeySet, allowUnauthenticated: boolean): void {
  if (keys.authRequired || allowUnauthenticated || isLoopbackHost(host)) return;
  throw new TallyError(
    'TALLY_CONFIG_INVALID',
    `refusing to listen on ${host} without API keys: anyone who can reach it could read and write all data.\n` +
      `  Create a key first (tally keys create --project <name> --scope write), bind to 127.0.0.1,\n` +
      `  or set TALLY_ALLOW_UNAUTHENTICATED=true to serve the open API on purpose (e.g. behind your own auth proxy).`,
  );
}
