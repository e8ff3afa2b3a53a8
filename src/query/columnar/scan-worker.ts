import { parentPort, workerData } from 'node:worker_threads';
import { runSlice, type ScanColumns, type ScanPlan, type Scratch } from './scan.ts';

/** A scan worker (scan-pool.ts): runs slices of plans over the shared columns it was started with. */
export interface SliceRequest {
  id: number;
  plan: ScanPlan;
  u0: number;
  u1: number;
}

const columns = workerData as ScanColumns;
const port = parentPort!;
// The state array only: the durations are transferred to the caller with each answer.
const scratch: Scratch = {};
port.on('message', (req: SliceRequest) => {
  const slice = runSlice(columns, req.plan, req.u0, req.u1, scratch);
  const s = slice.sums;
  const buffers = [s.visitors, s.events, s.pageViews, s.visits, s.bounces, s.durationMs, s.visitPageViews];
  port.postMessage(
    { id: req.id, slice },
    [...buffers, slice.durations].map((a) => a.buffer as ArrayBuffer),
  );
});
