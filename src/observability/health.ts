import { withTimeout } from '../util/with-timeout.ts';

export type HealthStatus = 'ok' | 'degraded' | 'down';

/** One dependency's readiness probe. `degraded` keeps the service ready (e.g. cache down). */
export interface HealthCheck {
  name: string;
  check(): Promise<HealthStatus>;
}

export interface ReadinessReport {
  status: 'ready' | 'degraded' | 'unavailable';
  checks: Record<string, HealthStatus>;
}

/** Runs every check (each bounded by `timeoutMs`) and folds them into one answer. */
export async function readiness(checks: readonly HealthCheck[], timeoutMs = 2000): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c) => {
      try {
        const status = await withTimeout(c.check(), timeoutMs, () => new Error(`${c.name} timed out`));
        return [c.name, status] as const;
      } catch {
        return [c.name, 'down'] as const;
      }
    }),
  );
  const statuses = results.map(([, s]) => s);
  const status = statuses.includes('down')
    ? 'unavailable'
    : statuses.includes('degraded')
      ? 'degraded'
      : 'ready';
  return { status, checks: Object.fromEntries(results) };
}
