import Fastify from 'fastify';

// The single-event ingest baseline: a bare Fastify app that parses the same JSON request and
// answers 202, doing nothing else. Tally's figure is reported as a ratio of this one.
const app = Fastify({ logger: false });
app.get('/health', async () => ({ status: 'healthy' }));
app.post('/v1/events', async (_request, reply) => reply.code(202).send({ accepted: 1 }));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
