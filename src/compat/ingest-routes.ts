/**
 * The earlier systems' ingest endpoints (README.md, "Compatibility with the earlier systems"):
 * their clients post events in their own shapes (src/compat/event-shapes.ts) and expect
 * 200, where Tally's own `POST /v1/events` answers 202. src/ingest/routes.ts serves each one
 * exactly as `/v1/events` otherwise: same body decoding, validation, limits and sink.
 */
export const COMPAT_INGEST_ROUTES: readonly { path: string; summary: string; status: number }[] = [
  { path: '/activity', summary: 'Seed 000 activity event', status: 200 },
  { path: '/ingest', summary: 'Seed 003 click event', status: 200 },
];
