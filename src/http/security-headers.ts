import type { FastifyInstance } from 'fastify';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';

/**
 * Registers @fastify/helmet without applying it anywhere: JSON API routes do not need it and
 * the Swagger UI at /docs would break under a strict policy. A route opts in with
 * `{ helmet: DASHBOARD_SECURITY_HEADERS }` in its options (or `await reply.helmet(...)`).
 */
export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(helmet, { global: false });
}

/**
 * Headers for the dashboard page: a same-origin Content-Security-Policy (no inline scripts,
 * no framing), nosniff, a strict referrer policy, HSTS (ignored by browsers over plain HTTP).
 */
export const DASHBOARD_SECURITY_HEADERS: Omit<FastifyHelmetOptions, 'global' | 'enableCSPNonces'> = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      fontSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
  },
  referrerPolicy: { policy: 'no-referrer' },
  crossOriginEmbedderPolicy: false,
};
