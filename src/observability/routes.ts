import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { MetricsSource } from './cluster-metrics.ts';
import { readiness, type HealthCheck } from './health.ts';

export interface OpsRoutesDeps {
  serviceName: string;
  registry: MetricsSource;
  checks: readonly HealthCheck[];
  isStopping: () => boolean;
}

// The liveness answer of an earlier system, whose deployments' health checks read it (README.md,
// "Compatibility with the earlier systems").
const Health = Type.Object(
  { status: Type.Literal('healthy'), service: Type.String() },
  { description: 'The process is up (seed 004 shape)' },
);
const Ready = Type.Object(
  {
    status: Type.String({ description: 'ready, degraded (200), unavailable or stopping (503)' }),
    checks: Type.Record(Type.String(), Type.String(), { description: 'ok, degraded or down per dependency' }),
  },
  { description: 'Readiness and each dependency check' },
);

/** `/health` (liveness), `/ready` (dependencies) and `/metrics` (Prometheus). */
export function opsRoutes(deps: OpsRoutesDeps) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    const tags = ['operations'];
    app.get(
      '/health',
      { schema: { tags, summary: 'Liveness: the process is up', response: { 200: Health } } },
      () => ({
        status: 'healthy',
        service: deps.serviceName,
      }),
    );
    app.get(
      '/ready',
      {
        schema: {
          tags,
          summary: 'Readiness: 503 while a required dependency is down',
          description:
            'A cache (Redis) outage only degrades: 200 with status `degraded`, answers come from PostgreSQL.',
          response: { 200: Ready, 503: Ready },
        },
      },
      async (_req, reply) => {
        if (deps.isStopping()) return reply.code(503).send({ status: 'stopping', checks: {} });
        const report = await readiness(deps.checks);
        return reply.code(report.status === 'unavailable' ? 503 : 200).send(report);
      },
    );
    app.get(
      '/metrics',
      {
        schema: {
          tags,
          summary: 'Prometheus metrics',
          response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
        },
      },
      async (_req, reply) => {
        const body = await deps.registry.metrics();
        return reply.type(deps.registry.contentType).send(body);
      },
    );
  };
}
