/**
 * `npm test` and `npm run test:quick`: runs test files as `node --test` does (one process per
 * file, the spec reporter, exit 1 on a failure) and ends an interrupted run cleanly.
 *
 * TRICKY: on Ctrl-C, `node --test` cancels every test that has not finished, printing "Promise
 * resolution is still pending but the event loop has already resolved" once per file, and exits
 * at once, while the file that was running dies without its `t.after` hooks. Here the first
 * SIGINT or SIGTERM stops the run (the running file gets SIGTERM, and ./interrupt.ts stops what
 * it started), this process waits for it to exit, says so in one message and exits 130. A second
 * Ctrl-C exits at once.
 *
 * Usage: node test/helpers/run-tests.ts [--concurrency N|max] [--test-name-pattern P]... GLOB...
 */
import { globSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1' },
    'test-name-pattern': { type: 'string', multiple: true },
    'test-skip-pattern': { type: 'string', multiple: true },
  },
  allowPositionals: true,
});
if (positionals.length === 0) {
  process.stderr.write('usage: run-tests.ts [--concurrency N|max] GLOB...\n');
  process.exit(2);
}
const concurrency = values.concurrency === 'max' ? true : Number(values.concurrency);
if (concurrency !== true && !(Number.isInteger(concurrency) && concurrency > 0)) {
  process.stderr.write(`--concurrency must be a positive integer or max (got ${values.concurrency})\n`);
  process.exit(2);
}
const files = [...new Set(positionals.flatMap((p) => globSync(p)))].sort().map((f) => resolve(f));

const controller = new AbortController();
let interruptedBy: NodeJS.Signals | undefined;
const started = new Set<string>();
const running = new Set<string>();
let failed = false;

function interrupt(signal: NodeJS.Signals): void {
  if (interruptedBy !== undefined) {
    process.stderr.write(`\n${signal} again: exiting now; the running test file still stops on its own.\n`);
    process.exit(130);
  }
  interruptedBy = signal;
  controller.abort();
}
process.on('SIGINT', interrupt);
process.on('SIGTERM', interrupt);

/** Passes events to the reporter until the run is interrupted; what is cancelled then is not news. */
interface Event {
  type: string;
  data: { name?: string; file?: string; todo?: unknown; skip?: unknown };
}

/** Passes events to the reporter until the run is interrupted; what is cancelled then is not news. */
const untilInterrupted = new Transform({
  objectMode: true,
  transform(event: Event, _, done) {
    if (interruptedBy !== undefined) return done();
    const { name, file } = event.data;
    // A file's own test (named by its path) is dequeued when its process starts.
    if (file !== undefined && name === file) {
      if (event.type === 'test:dequeue') {
        running.add(file);
        started.add(file);
      }
      if (event.type === 'test:complete') running.delete(file);
    }
    if (event.type === 'test:fail' && !event.data.todo && !event.data.skip) failed = true;
    done(null, event);
  },
});

await pipeline(
  run({
    files,
    concurrency,
    signal: controller.signal,
    testNamePatterns: values['test-name-pattern'],
    testSkipPatterns: values['test-skip-pattern'],
  }),
  untilInterrupted,
  new spec(),
  process.stdout,
  { end: false },
);

if (interruptedBy !== undefined) {
  const names = [...running].map((f) => relative(process.cwd(), f)).join(', ');
  const notRun = files.filter((f) => !started.has(f)).length;
  process.stdout.write(
    `\n✖ Interrupted by ${interruptedBy}${names ? ` during ${names}` : ''}: ` +
      `stopped it and what it started; ${notRun} of ${files.length} test files did not run.\n`,
  );
  process.exitCode = 130;
} else if (failed) process.exitCode = 1;
