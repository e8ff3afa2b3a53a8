import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Makes the socket inactivity timeout (Fastify's `connectionTimeout`, TALLY_REQUEST_TIMEOUT_MS)
 * cut off only the client's silence: a socket idle before its request, trickling a body, or not
 * reading an answer that has started. A socket whose request arrived whole and whose answer has
 * not started yet is waiting on Tally, and is kept: Tally answers it within its own deadlines
 * (a statement's 60 s `statement_timeout`, then 503 TALLY_DB_TIMEOUT; an ingest's 5 s of
 * retries), and once the answer starts writing, the timeout runs again.
 *
 * TRICKY: without a 'timeout' listener Node destroys any socket that times out, answer pending or
 * not, and the client sees only "other side closed" (undici) where the docs promise a coded 503:
 * a summary that waited 30 s for the read model lost its connection that way
 * (docs/benchmarks.md, scenario 5 at full size). `test/http/socket-timeouts.test.ts`.
 */
export function keepSocketsWhileAnswering(server: Server): void {
  // The newest response of each socket; a WeakMap, so a closed socket takes its entry with it.
  const answers = new WeakMap<Socket, ServerResponse>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => answers.set(req.socket, res));
  server.on('timeout', (socket: Socket) => {
    const res = answers.get(socket);
    if (res !== undefined && res.req.complete && !res.headersSent) return;
    socket.destroy();
  });
}
