import { Worker } from 'node:worker_threads';
import type { ColumnarModel } from './model.ts';
import type { SliceRequest } from './scan-worker.ts';
import {
  mergeSlices,
  planScan,
  runSlice,
  scanColumns,
  type ScanColumns,
  type ScanQuestion,
  type ScanSums,
  type Scratch,
  type SliceSums,
} from './scan.ts';

/**
 * Runs each scan in `slices` parts of about equal events, by users: the calling thread runs the
 * first, worker threads the others, all reading the model's shared arrays (no copy). Slices of
 * disjoint users add up exactly (scan.ts, runSlice); the median is taken over all their durations.
 */
export class ScanPool {
  readonly #model: ColumnarModel;
  readonly #columns: ScanColumns;
  readonly #workers: Worker[];
  readonly #pending = new Map<number, { resolve: (s: SliceSums) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  #stopped = false;
  /** The calling thread's state array (its durations wait for the workers: never shared). */
  readonly #scratch: Scratch = {};

  constructor(model: ColumnarModel, slices: number) {
    if (!Number.isInteger(slices) || slices < 1)
      throw new RangeError(`slices must be a positive integer (got ${slices})`);
    this.#model = model;
    this.#columns = scanColumns(model);
    this.#workers = Array.from({ length: slices - 1 }, () => {
      const w = new Worker(new URL('./scan-worker.ts', import.meta.url), { workerData: this.#columns });
      w.on('message', ({ id, slice }: { id: number; slice: SliceSums }) => {
        this.#pending.get(id)?.resolve(slice);
        this.#pending.delete(id);
      });
      // A dead worker fails the scans waiting on it rather than leaving them pending forever.
      w.on('error', (err: Error) => this.#failAll(err));
      w.on('exit', (code) => this.#failAll(new Error(`scan worker exited (code ${code})`)));
      return w;
    });
  }

  async scan(q: ScanQuestion): Promise<ScanSums> {
    if (this.#stopped) throw new Error('the scan pool is stopped');
    const plan = planScan(this.#model, q);
    const bounds = this.#bounds();
    const remote = this.#workers.map(
      (w, i) =>
        new Promise<SliceSums>((resolve, reject) => {
          const id = this.#nextId++;
          this.#pending.set(id, { resolve, reject });
          const req: SliceRequest = { id, plan, u0: bounds[i + 1], u1: bounds[i + 2] };
          w.postMessage(req);
        }),
    );
    const local = runSlice(this.#columns, plan, bounds[0], bounds[1], this.#scratch);
    return mergeSlices([local, ...(await Promise.all(remote))], plan.need.median);
  }

  /** Stops the workers (idempotent). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled(this.#workers.map((w) => w.terminate()));
  }

  #failAll(err: Error): void {
    for (const { reject } of this.#pending.values()) reject(err);
    this.#pending.clear();
  }

  /** User bounds of the slices: slice i is [b[i], b[i+1]), each about 1/slices of the events. */
  #bounds(): number[] {
    const users = this.#columns.userEvents;
    const nUsers = users.length - 1;
    const n = this.#workers.length + 1;
    const total = users[nUsers];
    const b = [0];
    let u = 0;
    for (let i = 1; i < n; i++) {
      const target = (total * i) / n;
      while (u < nUsers && users[u] < target) u++;
      b.push(u);
    }
    b.push(nUsers);
    return b;
  }
}
