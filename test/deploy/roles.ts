import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { opsRoutes } from '../../src/observability/routes.ts';

export const ROLES = ['start', 'ingest', 'process', 'query'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The ports a role listens on with this environment, as the code computes them. */
export function rolePorts(role: Role, env: Record<string, string>): { http: number; grpc?: number } {
  const config = loadConfig(env);
  switch (role) {
    case 'start':
    case 'ingest':
      return { http: config.serverPort };
    case 'query':
      return { http: config.raw.TALLY_QUERY_PORT, grpc: config.raw.TALLY_GRPC_PORT };
    case 'process':
      return { http: config.raw.METRICS_PORT };
  }
}

/** Names of env variables that Tally does not declare in src/config/schema.ts. */
export function undeclaredVariables(env: Record<string, string>): string[] {
  return Object.keys(env).filter((name) => !(name in ConfigSchema.properties));
}

/** True when the health/ready/metrics routes every role serves include `path`. */
export async function isOpsRoute(path: string): Promise<boolean> {
  const app = Fastify();
  await app.register(
    opsRoutes({ serviceName: 't', registry: new Registry(), checks: [], isStopping: () => false }),
  );
  await app.ready();
  const found = app.hasRoute({ method: 'GET', url: path });
  await app.close();
  return found;
}
