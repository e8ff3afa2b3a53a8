import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { PoolOptions } from '../../store/pool.ts';
import { adoptSummaryDigests, Layers, type SummaryDigests } from './layers.ts';
import { unpackModel, type PackedModel } from './transfer.ts';

export interface LoadRequest {
  connection: Omit<PoolOptions, 'max'>;
  project: string;
  cutoffMs: number;
}

export interface LoadResult {
  /** The data version of the snapshot the rows were read on. */
  version: number;
  model: PackedModel;
  /** Built with the columns, so that the thread that answers does not (layers.ts). */
  digests: SummaryDigests;
}

/**
 * A full load of `project`'s read model from the raw rows at or after `cutoffMs`, on one snapshot
 * (src/store/model-rows.ts), run in a worker thread (load-worker.ts) on a connection of its own.
 *
 * Why a thread: at 10 M events the rows take minutes to read and parse and seconds to lay out as
 * columns; on the thread that answers, every answer waited behind them (scenario 6's cached p99
 * was 1.1 s while a load ran: docs/benchmarks.md, "The read model's load off the event loop").
 * Here that thread only unpacks the result, a slice at a time (transfer.ts), and adopts the
 * summary's digests the worker built. `signal` ends the thread, and with it its connection, at
 * once.
 */
export async function loadInWorker(
  request: LoadRequest,
  signal: AbortSignal,
): Promise<{ version: number; layers: Layers }> {
  signal.throwIfAborted();
  const worker = new Worker(new URL('./load-worker.ts', import.meta.url), { workerData: request });
  const stop = () => void worker.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    // 'error' (the worker threw) rejects `once`; an exit before any message is a failure too.
    const result = await Promise.race([
      once(worker, 'message').then(([r]) => r as LoadResult),
      once(worker, 'exit').then(([code]) => {
        throw signal.aborted
          ? signal.reason
          : new Error(`the read model's load worker exited (code ${String(code)}) without a model`);
      }),
    ]);
    const model = await unpackModel(result.model);
    adoptSummaryDigests(model, result.digests);
    return { version: result.version, layers: new Layers(model) };
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
