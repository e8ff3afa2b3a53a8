import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { pino } from 'pino';
import { TallyError } from '../../src/errors/tally-error.ts';
import { runRole } from '../../src/cli/role-runner.ts';
import { holdPort } from '../helpers/process-group.ts';

const logger = pino({ level: 'silent' });

test('stop() releases in reverse order of opening, once, and every release runs even when one fails', async () => {
  const released: string[] = [];
  const role = await runRole(logger, async (runner) => {
    await runner.open(
      'a',
      () => Promise.resolve('a'),
      (x) => released.push(x),
    );
    runner.onStop('b', () => {
      released.push('b');
      throw new Error('b failed');
    });
    runner.onStop('c', () => released.push(`c stopping=${runner.isStopping()}`));
    return { name: 'role' };
  });
  assert.equal(role.name, 'role');
  const first = role.stop();
  const second = role.stop();
  await assert.rejects(first, /b failed/);
  await assert.rejects(second, /b failed/);
  assert.deepEqual(released, ['c stopping=true', 'b', 'a']);
});

test('a failing start-up step releases what was opened before it, in reverse order, and rethrows', async () => {
  const released: string[] = [];
  const cause = new TallyError('TALLY_CONFIG_INVALID', 'bad');
  await assert.rejects(
    runRole(logger, async (runner) => {
      runner.onStop('first', () => released.push('first'));
      runner.onStop('second', () => {
        released.push('second');
        throw new Error('ignored: the start-up error is what matters');
      });
      await runner.open(
        'never opened',
        () => Promise.reject(cause),
        () => released.push('never'),
      );
      return {};
    }),
    (err) => err === cause,
  );
  assert.deepEqual(released, ['second', 'first']);
});

test('listen on a port in use: TALLY_PORT_IN_USE naming the port and the setting; the app is closed', async (t) => {
  const busy = await holdPort(t);
  const app = Fastify();
  await assert.rejects(
    runRole(logger, async (runner) => {
      await runner.app(() => Promise.resolve(app));
      await runner.listen(app, { host: '127.0.0.1', port: busy, setting: 'SERVER_PORT' });
      return {};
    }),
    (err: unknown) =>
      err instanceof TallyError &&
      err.code === 'TALLY_PORT_IN_USE' &&
      err.message ===
        `port ${busy} (SERVER_PORT) is already in use on 127.0.0.1; set SERVER_PORT to a free port`,
  );
  // Fastify refuses new routes once closed; an open app would accept one.
  assert.throws(() => app.get('/late', () => 'x'));
});

test('listenGrpc maps @grpc/grpc-js bind errors (EADDRINUSE in the message) and passes others through', async () => {
  const at = { host: '127.0.0.1', port: 50051, setting: 'TALLY_GRPC_PORT' };
  const role = runRole(logger, async (runner) => {
    await runner.listenGrpc(
      () =>
        Promise.reject(
          new Error(
            'No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use]',
          ),
        ),
      at,
    );
    return {};
  });
  await assert.rejects(
    role,
    /port 50051 \(TALLY_GRPC_PORT\) is already in use on 127.0.0.1; set TALLY_GRPC_PORT/,
  );
  const other = new Error('something else');
  await assert.rejects(
    runRole(logger, async (runner) => {
      await runner.listenGrpc(() => Promise.reject(other), at);
      return {};
    }),
    (err) => err === other,
  );
});
