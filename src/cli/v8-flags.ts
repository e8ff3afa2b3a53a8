/**
 * V8 flags every Tally process runs with: `npm start` / `npm run tally`, `bin/tally.js`, the
 * container's entrypoint and the cluster workers of `tally process` and `tally ingest`
 * (test/deploy/launch-flags.test.ts keeps those in step with this list).
 *
 * Why: measured under the benchmark's loads, a process's live heap after a full GC is a small
 * part of its resident memory. Batches live long enough to be promoted, so the old space fills
 * with dead batches and V8 lets it grow to several times the live heap before collecting; with
 * lots of RAM the young generation also grows to 2 × 64 MB. A `tally process` worker draining
 * 1,000,000 events (live heap ~50–75 MB) peaked at ~455 MB and `tally start` under HTTP ingest
 * at ~400 MB; with a 16 MB semi-space and a 50 % old-space growth step, ~230 MB and ~205 MB,
 * throughput within the run-to-run noise. A 25 % step saved ~20 MB more but cost ~30 % of the
 * processor's throughput (9× the full GCs). The semi-space is 32 MB, not 16: `tally ingest`
 * allocates per event and keeps each batch until Kafka acknowledges it, and in an interleaved
 * A/B of batched ingest (three ingest processes, one broker, five 8 s runs each) 32 MB gave
 * +28 % events/s over 16 MB, 64 MB no more than 32; peak RSS +10 MB for ingest, +38 MB for a
 * processor worker (~280 MB). Neither flag is a hard limit: a batch of large events still gets
 * the heap it needs. Flags given to node itself come later and override these.
 */
export const TALLY_V8_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--heap-growing-percent=50'];
