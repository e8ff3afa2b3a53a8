import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { readiness, type HealthCheck } from './health.ts';

export interface OpsRoutesDeps {
  serviceName: string;
  registry: Registry;
  checks: readonly HealthCheck[];
  isStopping: () => boolean;
}

/** `/health` (liveness), `/ready` (dependencies) and `/metrics` (Prometheus). */
export function opsRoutes(deps: OpsRoutesDeps) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    const tags = ['operations'];
    app.get('/health', { schema: { tags, summary: 'Liveness: the process is up' } }, () => ({
      status: 'healthy',
      service: deps.serviceName,
    }));
    app.get(
      '/ready',
      { schema: { tags, summary: 'Readiness: 503 while a required dependency is down' } },
      async (_req, reply) => {
        if (deps.isStopping()) return reply.code(503).send({ status: 'stopping', checks: {} });
        const report = await readiness(deps.checks);
        return reply.code(report.status === 'unavailable' ? 503 : 200).send(report);
      },
    );
    app.get(
      '/metrics',
      { schema: { tags, summary: 'Prometheus metrics', hide: false } },
      async (_req, reply) => {
        const body = await deps.registry.metrics();
        return reply.type(deps.registry.contentType).send(body);
      },
    );
  };
}
