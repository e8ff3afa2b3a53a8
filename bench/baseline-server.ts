import Fastify from 'fastify';

// The baselines of the HTTP scenarios: a bare Fastify app that parses the same JSON request and
// answers 202 (single-event ingest), or answers a summary-shaped JSON (query round trip), doing
// nothing else. Tally's figures are reported as ratios of these.
const app = Fastify({ logger: false });
app.get('/health', async () => ({ status: 'healthy' }));
app.post('/v1/events', async (_request, reply) => reply.code(202).send({ accepted: 1 }));
app.get<{ Querystring: { from?: string; to?: string } }>('/v1/stats/summary', async (request) => ({
  from: request.query.from,
  to: request.query.to,
  events: 10_000_000,
  page_views: 5_000_000,
  unique_users: 20_000,
}));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
