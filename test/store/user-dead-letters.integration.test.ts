import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type pg from 'pg';
import { listAudit } from '../../src/store/user-audit.ts';
import { deleteUser } from '../../src/store/user-deletion.ts';
import { exportUser } from '../../src/store/user-export.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

const KEY = Buffer.alloc(32, 9);

/**
 * One dead letter as the test writes it, with what it is from the contract's side (README "Users:
 * delete and export"): the user's when its project is the deletion's (no project: `default`) and
 * its payload is a JSON object whose user_id is the id, as a string or a number written the same.
 */
interface Letter {
  project: string | null;
  /** How the payload names a user: `named` (user_id a string), `numeric` (a number), else no readable id. */
  form: 'named' | 'numeric' | 'in-properties' | 'not-json' | 'array' | 'not-utf8';
  user: string;
  /** Write the user id with every character as a \u escape (JSON allows any). */
  escaped: boolean;
}

const USERS = ['u-1', 'u-10', '42', 'é/"x\\', '👩‍💻', '%_*'];

function escapeAll(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) out += `\\u${s.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return `"${out}"`;
}

function payloadOf(l: Letter): Buffer {
  const id = l.escaped ? escapeAll(l.user) : JSON.stringify(l.user);
  switch (l.form) {
    case 'named':
      return Buffer.from(`{"type":"click","user_id":${id},"timestamp":"soon"}`);
    case 'numeric':
      return Buffer.from(`{"type":"click","user_id":${/^\d+$/.test(l.user) ? l.user : '7'}}`);
    case 'in-properties':
      return Buffer.from(`{"type":"click","properties":{"user_id":${id}}}`);
    case 'not-json':
      return Buffer.from(`user_id=${l.user} {"user_id":${id}`);
    case 'array':
      return Buffer.from(`[{"type":"click","user_id":${id}}]`);
    case 'not-utf8':
      return Buffer.concat([
        Buffer.from(`{"user_id":${id},"x":"`),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}'),
      ]);
  }
}

/** The reference: whether `l` is a dead letter of `user` in `project`. */
function belongs(l: Letter, project: string, user: string): boolean {
  const inProject = l.project === project || (l.project === null && project === 'default');
  if (!inProject) return false;
  if (l.form === 'named') return l.user === user;
  if (l.form === 'numeric') return (/^\d+$/.test(l.user) ? l.user : '7') === user;
  return false;
}

async function insertLetters(pool: pg.Pool, letters: readonly Letter[]): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO tally.dead_letters (project, reason, detail, payload, source, topic, partition, "offset")
     SELECT p, 'invalid', 'test', b, 'kafka', 'events', 0, o
       FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS x(p, b, o)
     ORDER BY o RETURNING id::text`,
    [letters.map((l) => l.project), letters.map(payloadOf)],
  );
  return rows.map((r) => r.id);
}

async function remainingIds(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    'SELECT id::text AS id FROM tally.dead_letters d ORDER BY d.id',
  );
  return rows.map((r) => r.id);
}

interface Line {
  kind: string;
  dead_letters?: number;
  data?: { id?: number; payload?: string };
}

async function exportLines(pool: pg.Pool, project: string, userId: string): Promise<Line[]> {
  let text = '';
  for await (const chunk of exportUser(pool, { project, userId, actor: 'cli:test', key: KEY })) text += chunk;
  return text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
}

const letterArb = fc.record({
  project: fc.constantFrom<string | null>('default', 'shop', null),
  form: fc.constantFrom<Letter['form']>(
    'named',
    'named',
    'numeric',
    'in-properties',
    'not-json',
    'array',
    'not-utf8',
  ),
  user: fc.constantFrom(...USERS),
  escaped: fc.boolean(),
});

test(
  "a deletion removes exactly the user's dead letters of its project, the export lists exactly them, and the others stay",
  { timeout: 180_000 },
  async (t) => {
    const { pool } = await startTestPostgres(t);
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(letterArb, { minLength: 1, maxLength: 30 }),
        fc.constantFrom('default', 'shop'),
        fc.constantFrom(...USERS),
        async (letters, project, user) => {
          round++;
          await pool.query('DELETE FROM tally.dead_letters');
          const ids = await insertLetters(pool, letters);
          const theirs = ids.filter((_, i) => belongs(letters[i], project, user));
          const label = `round ${round}: ${user} of ${project}`;

          const lines = await exportLines(pool, project, user);
          assert.equal(lines[0].dead_letters, theirs.length, `${label}: export header`);
          const exported = lines.filter((l) => l.kind === 'dead_letter');
          assert.deepEqual(
            exported.map((l) => String(l.data?.id)),
            theirs,
            `${label}: exported`,
          );
          for (const l of exported) {
            const i = ids.indexOf(String(l.data?.id));
            assert.equal(l.data?.payload, payloadOf(letters[i]).toString(), 'the payload as its text');
          }

          const deletion = await deleteUser(pool, { project, userId: user, actor: 'cli:test', key: KEY });
          assert.equal(deletion.dead_letters, theirs.length, `${label}: removed`);
          assert.deepEqual(
            await remainingIds(pool),
            ids.filter((id) => !theirs.includes(id)),
            `${label}: the others stay`,
          );
          const [audit] = await listAudit(pool, { project, limit: 1 });
          assert.equal((audit.detail as { dead_letters?: number }).dead_letters, theirs.length);
        },
      ),
      { numRuns: 60 },
    );
  },
);

test(
  'over many pages of candidates: every one of the user’s dead letters goes',
  { timeout: 120_000 },
  async (t) => {
    const { pool } = await startTestPostgres(t);
    // Every payload has a backslash, so each is a candidate read in TypeScript: several pages of them.
    const letters: Letter[] = Array.from({ length: 1000 }, (_, i) => ({
      project: 'shop',
      form: 'named',
      user: i % 3 === 0 ? 'é/"x\\' : 'u-1',
      escaped: i % 2 === 0,
    }));
    const ids = await insertLetters(pool, letters);
    const theirs = ids.filter((_, i) => letters[i].user === 'é/"x\\');
    const lines = await exportLines(pool, 'shop', 'é/"x\\');
    assert.equal(lines.filter((l) => l.kind === 'dead_letter').length, theirs.length);
    const deletion = await deleteUser(pool, {
      project: 'shop',
      userId: 'é/"x\\',
      actor: 'cli:test',
      key: KEY,
    });
    assert.equal(deletion.dead_letters, theirs.length);
    assert.equal((await remainingIds(pool)).length, ids.length - theirs.length);
  },
);
