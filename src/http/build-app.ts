import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyInstance,
  type FastifyPluginAsync,
} from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import type { AuthDeps } from '../auth/http-auth.ts';
import { TallyError } from '../errors/tally-error.ts';
import { LIMITS } from '../event/limits.ts';
import { errorBody, installErrorHandler } from './error-handler.ts';
import { installHardening } from './hardening.ts';
import { keepSocketsWhileAnswering } from './socket-timeouts.ts';

export interface AppDeps {
  logger: Logger;
  title: string;
  requestTimeoutMs: number;
  /** API keys and rate limits (src/auth/http-auth.ts); omitted = no auth, `default` project. */
  auth?: AuthDeps;
  /** Route plugins, registered in order (ingest, query, ops, dashboard, ...). */
  plugins: readonly FastifyPluginAsync[];
}

/** Builds the Fastify app without listening, so tests can inject() or listen on port 0. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // pino's Logger is a FastifyBaseLogger; naming the wider type keeps the app's type the default one.
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance,
    logController: new LogController({ disableRequestLogging: true }),
    requestTimeout: deps.requestTimeoutMs,
    // Node enforces requestTimeout (slow-loris) only when given at creation, and checks it only
    // every connectionsCheckingInterval (default 30 s).
    http: {
      requestTimeout: deps.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, deps.requestTimeoutMs),
    },
    // The socket inactivity timeout: for the client's silence only (keepSocketsWhileAnswering below).
    connectionTimeout: deps.requestTimeoutMs,
    return503OnClosing: true,
    // A path parameter may be any user id events carry (Fastify's default stops at 100
    // characters): /v1/users/:user_id must reach every user, to delete or export it too.
    routerOptions: { maxParamLength: LIMITS.userId },
    // A URL Fastify cannot route (bad percent-encoding, an over-long parameter) gets Tally's coded
    // error JSON, not Fastify's own body.
    frameworkErrors: (error, _request, reply) => {
      const known = error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      const err = known
        ? new TallyError('TALLY_INVALID_QUERY', `url: ${error.message}`, {
            details: [{ index: 0, field: 'url', code: 'TALLY_INVALID_QUERY', message: error.message }],
          })
        : new TallyError('TALLY_INTERNAL', 'internal error');
      // TRICKY: this reply skips the app's hooks (no route context yet), so the newline is added here.
      void (reply as FastifyReply)
        .code(err.statusCode)
        .type('application/json; charset=utf-8')
        .send(`${JSON.stringify(errorBody(err))}\n`);
    },
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true, allErrors: true },
    },
  });
  keepSocketsWhileAnswering(app.server);
  installErrorHandler(app);
  endJsonWithNewline(app);
  // TRICKY: close() reaps the keep-alive connections idle at that moment; a request still
  // in flight then (waiting for Kafka or PostgreSQL) leaves its connection open and idle
  // afterwards, and the client may hold it for the whole keep-alive timeout (72 s), stalling
  // shutdown. Keep reaping idle connections until the server has closed.
  app.addHook('preClose', (done) => {
    const reaper = setInterval(() => app.server.closeIdleConnections(), 50);
    reaper.unref();
    app.server.once('close', () => clearInterval(reaper));
    done();
  });
  await app.register(swagger, {
    openapi: {
      info: { title: deps.title, version: '1', description: 'Real-time user-activity analytics' },
      tags: [
        { name: 'ingest' },
        { name: 'query' },
        { name: 'admin', description: 'Deleting and exporting users, and their audit: admin keys only' },
        { name: 'operations' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await installHardening(app, deps.auth);
  for (const plugin of deps.plugins) await app.register(plugin);
  // The OpenAPI 3 document generated from the route schemas (also at /docs/json, browsable at /docs).
  app.get('/docs/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}

const JSON_TYPE = /^application\/([a-z.+-]*\+)?json\b/i;
const NEWLINE = Buffer.from('\n');

/**
 * Every JSON answer, success or error, ends with a newline, as curl users and line-based tools
 * expect. One root onSend hook covers every route, the error handler and the 404 handler;
 * Fastify sets Content-Length after onSend, from the final payload. Streams (SSE), compressed
 * bodies and non-JSON types pass untouched.
 */
function endJsonWithNewline(app: FastifyInstance): void {
  // A callback hook, not an async one: no promise per request on the ingest hot path.
  app.addHook('onSend', (_request, reply, payload, done) => done(null, withNewline(reply, payload)));
}

function withNewline(reply: FastifyReply, payload: unknown): unknown {
  const type = reply.getHeader('content-type');
  if (typeof type !== 'string' || !JSON_TYPE.test(type) || reply.hasHeader('content-encoding'))
    return payload;
  if (typeof payload === 'string')
    return payload.length === 0 || payload.endsWith('\n') ? payload : `${payload}\n`;
  if (Buffer.isBuffer(payload) && payload.length > 0 && payload.at(-1) !== 0x0a)
    return Buffer.concat([payload, NEWLINE]);
  return payload;
}
