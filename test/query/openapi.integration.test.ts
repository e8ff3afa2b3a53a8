import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: {
    name: string;
    required?: boolean;
    description?: string;
    schema?: { description?: string };
  }[];
  responses: Record<string, { description: string }>;
}

const DOCUMENTED_PATHS = [
  '/v1/events',
  '/activity',
  '/ingest',
  '/v1/collect',
  '/v1/stats/summary',
  '/v1/stats/timeseries',
  '/v1/stats/top-pages',
  '/v1/stats/event-types',
  '/v1/stats/breakdown',
  '/v1/users/{user_id}/events',
  '/v1/users/{user_id}',
  '/v1/users/{user_id}/export',
  '/v1/admin/audit',
  '/analytics/events',
  '/health',
  '/ready',
  '/metrics',
];
test('/docs/openapi.json: OpenAPI 3 with every endpoint, parameter and response described', async (t) => {
  const tally = await startTestTally(t);
  const { status, body } = await getJson<{
    openapi: string;
    tags?: { name: string }[];
    paths: Record<string, Record<string, Operation>>;
  }>(`${tally.url}/docs/openapi.json`);
  assert.equal(status, 200);
  assert.match(body.openapi, /^3\./);
  for (const path of DOCUMENTED_PATHS) {
    const op = body.paths[path]?.get ?? body.paths[path]?.post ?? body.paths[path]?.delete;
    assert.ok(op, `${path} is documented`);
    assert.ok(op.summary, `${path} summary`);
    for (const p of op.parameters ?? [])
      assert.ok(p.description ?? p.schema?.description, `${path} parameter ${p.name} has no description`);
    for (const [code, r] of Object.entries(op.responses))
      assert.ok(r.description && r.description !== 'Default Response', `${path} ${code} has no description`);
  }
  const timeseries = body.paths['/v1/stats/timeseries'].get;
  assert.deepEqual(timeseries.parameters?.map((p) => p.name).sort(), [
    'bots',
    'consistency',
    'event_type',
    'filter',
    'from',
    'interval',
    'metric',
    'page_url',
    'to',
    'tz',
  ]);
  assert.ok(body.paths['/v1/stats/summary'].get.responses['400'].description.includes('TALLY_INVALID_QUERY'));
  // The user's rights, under their own tag, admin keys only.
  const admin = [
    body.paths['/v1/users/{user_id}'].delete,
    body.paths['/v1/users/{user_id}/export'].get,
    body.paths['/v1/admin/audit'].get,
  ];
  for (const op of admin) {
    assert.deepEqual(op.tags, ['admin']);
    assert.match(op.responses['403'].description, /admin key/);
    assert.ok(
      op.parameters?.some((p) => p.name === 'project' && p.required === true),
      'project is required',
    );
  }
  assert.ok(body.paths['/v1/users/{user_id}/export'].get.responses['200'], 'the export documents its 200');
  assert.ok(body.tags?.some((tag) => tag.name === 'admin'));
  // The browsable UI is served too.
  const ui = await fetch(`${tally.url}/docs/`);
  assert.equal(ui.status, 200);
});
