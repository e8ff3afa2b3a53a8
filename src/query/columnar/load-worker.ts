import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { readModelBase } from '../../store/model-rows.ts';
import { clientConfig } from '../../store/pool.ts';
import { ColumnarBuilder } from './builder.ts';
import { summaryDigestsOf } from './layers.ts';
import type { LoadRequest, LoadResult } from './load.ts';
import { packModel, transferables } from './transfer.ts';

/**
 * A full load of one project's read model (load.ts), in a thread of its own: it reads the rows
 * on a connection of its own, builds the columns and the summary's digests and posts them, then
 * ends. A failure is thrown: the thread's 'error' event carries it to the caller.
 */
const { connection, project, cutoffMs } = workerData as LoadRequest;
const client = new pg.Client(clientConfig(connection));
await client.connect();
try {
  const builder = new ColumnarBuilder();
  const version = await readModelBase(client, project, cutoffMs, builder);
  const model = builder.build();
  const result: LoadResult = { version, model: packModel(model), digests: summaryDigestsOf(model) };
  parentPort!.postMessage(result, transferables(result));
} finally {
  await client.end();
}
