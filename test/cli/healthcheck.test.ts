import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../src/cli/healthcheck.ts', import.meta.url));

async function serve(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.statusCode = req.url === '/health' ? status : 404;
    res.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port };
}

/** Runs the container HEALTHCHECK script the way Docker does, asynchronously (servers live in this process). */
function healthcheck(env: Record<string, string>): Promise<number | null> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT], { env: { PATH: process.env.PATH ?? '', ...env } }, (err) =>
      resolve(err ? (typeof err.code === 'number' ? err.code : 1) : 0),
    );
  });
}

test('container HEALTHCHECK: 0 when /health answers 200 on the role port, 1 otherwise', async (t) => {
  const healthy = await serve(200);
  const sick = await serve(503);
  t.after(() => {
    healthy.server.close();
    sick.server.close();
  });
  // PID 1 here is not a tally role, so the script falls back to `start` (SERVER_PORT).
  assert.equal(await healthcheck({ SERVER_PORT: String(healthy.port) }), 0);
  assert.equal(await healthcheck({ SERVER_PORT: String(sick.port) }), 1);
  await new Promise((closed) => healthy.server.close(closed));
  assert.equal(await healthcheck({ SERVER_PORT: String(healthy.port) }), 1, 'nothing listening');
});
