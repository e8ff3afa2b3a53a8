/**
 * V8 flags every Tally process runs with: `npm start` / `npm run tally`, `bin/tally.js`, the
 * container's entrypoint and the cluster workers of `tally process` and `tally ingest`
 * (test/deploy/launch-flags.test.ts keeps those in step with this list).
 *
 * Why: batches live long enough to be promoted, so the old space fills with dead batches and V8
 * lets it grow to several times the live heap before collecting, and with lots of RAM the young
 * generation grows too. A 50 % old-space growth step bounds resident memory without the full-GC
 * storms of a smaller step; a 32 MB semi-space keeps `tally ingest`'s per-event garbage young
 * (it keeps each batch until Kafka acknowledges it). Neither flag is a hard limit: a batch of
 * large events still gets the heap it needs. Flags given to node itself come later and override
 * these. The measurements behind both: docs/benchmarks.md ("The V8 flags every process runs with").
 */
export const TALLY_V8_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--heap-growing-percent=50'];
