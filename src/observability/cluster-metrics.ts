import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** The slice of a prom-client registry that `/metrics` serves. */
export type MetricsSource = Pick<Registry, 'metrics' | 'contentType'>;

type Request = { tally: 'metrics-request'; id: number };
type Reply = { tally: 'metrics-reply'; id: number; text?: string; error?: string };

/** Longer than prom-client's own 5 s wait for the workers, so that its error is the one reported. */
const REPLY_TIMEOUT_MS = 7000;

/** The sum of every cluster worker's registry (prom-client cluster support), for the primary. */
export class ClusterRegistry extends AggregatorRegistry<'text/plain; version=0.0.4; charset=utf-8'> {
  override metrics(): Promise<string> {
    return this.clusterMetrics();
  }
}

/** In a cluster worker: answer the primary's requests for this worker's metrics from `registry`. */
export function shareWorkerMetrics(registry: Registry): void {
  // Constructing one installs the listener that answers the primary's metrics requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries(registry);
}

/**
 * In the primary: answer workers that serve `/metrics` themselves (`tally ingest` with several
 * workers on one port) with the sum over all workers, whichever worker the scrape reached.
 */
export function serveWorkersClusterMetrics(): void {
  const registry = new ClusterRegistry();
  cluster.on('message', (worker, message: Request) => {
    if (message?.tally !== 'metrics-request') return;
    const reply = (r: Omit<Reply, 'tally' | 'id'>) => {
      if (worker.isConnected()) worker.send({ tally: 'metrics-reply', id: message.id, ...r } satisfies Reply);
    };
    registry.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: (err as Error).message }),
    );
  });
}

/** In a cluster worker: `/metrics` as the sum over every worker, asked of the primary. */
export function primaryClusterMetrics(): MetricsSource {
  let next = 0;
  const pending = new Map<
    number,
    { resolve: (text: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }
  >();
  process.on('message', (message: Reply) => {
    if (message?.tally !== 'metrics-reply') return;
    const waiter = pending.get(message.id);
    if (waiter === undefined) return;
    pending.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.text !== undefined) waiter.resolve(message.text);
    else waiter.reject(new Error(`cluster metrics failed: ${message.error}`));
  });
  return {
    contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = ++next;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('the primary did not answer the metrics request'));
        }, REPLY_TIMEOUT_MS);
        pending.set(id, { resolve, reject, timer });
        process.send?.({ tally: 'metrics-request', id } satisfies Request);
      }),
  };
}
