import type { FastifyCorsOptions } from '@fastify/cors';
import type { FastifyRequest } from 'fastify';

const COLLECT_PATH = '/v1/collect';

/** Parses TALLY_CORS_ORIGINS (comma-separated origins, or `*`) into a matcher. */
export function originMatcher(origins: string): (origin: string) => boolean {
  const list = origins
    .split(',')
    .map((o) => o.trim().replace(/\/+$/, '').toLowerCase())
    .filter((o) => o.length > 0);
  if (list.includes('*')) return () => true;
  const allowed = new Set(list);
  return (origin) => allowed.has(origin.toLowerCase());
}

/**
 * @fastify/cors options that answer CORS (and preflight) for `POST /v1/collect` only, from the
 * configured origins. Other routes get no CORS headers.
 */
export function collectCorsOptions(origins: string): FastifyCorsOptions {
  const allowed = originMatcher(origins);
  const any = origins.split(',').some((o) => o.trim() === '*');
  return {
    delegator: (request: FastifyRequest, callback) => {
      if (request.url.split('?')[0] !== COLLECT_PATH) return callback(null, { origin: false });
      callback(null, {
        origin: any ? '*' : (origin, cb) => cb(null, origin !== undefined && allowed(origin)),
        methods: ['POST'],
        allowedHeaders: ['content-type', 'authorization', 'x-api-key'],
        maxAge: 86_400,
      });
    },
  };
}

/**
 * TRICKY: a text/plain beacon is a "simple" request, which browsers send without asking first;
 * CORS headers alone would not stop a disallowed site, so the server refuses it itself.
 */
export function browserOriginRefused(request: FastifyRequest, allowed: (origin: string) => boolean): boolean {
  const origin = request.headers.origin;
  return origin !== undefined && origin !== 'null' && !allowed(origin);
}

/** Do-Not-Track or Global Privacy Control asked by the browser. */
export function asksNotToTrack(request: FastifyRequest): boolean {
  return request.headers.dnt === '1' || request.headers['sec-gpc'] === '1';
}
