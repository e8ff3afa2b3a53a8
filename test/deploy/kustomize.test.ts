import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { kustomizeBuild } from './kustomize.ts';

// The strategic-merge subset, on a made-up workload, against what `kustomize build` produces.

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'w' },
  spec: {
    template: {
      spec: {
        containers: [
          { name: 'a', image: 'a', env: [{ name: 'X', value: '1' }], ports: [{ containerPort: 1 }] },
          { name: 'b', image: 'b' },
        ],
      },
    },
  },
};
const config = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { K: 'v', L: 'w' } };

function build(patches: object[]): ReturnType<typeof kustomizeBuild> {
  const dir = mkdtempSync(join(tmpdir(), 'kustomize-'));
  try {
    writeFileSync(join(dir, 'base.yaml'), [deployment, config].map((d) => stringify(d)).join('---\n'));
    writeFileSync(join(dir, 'patch.yaml'), patches.map((d) => stringify(d)).join('---\n'));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      stringify({ resources: ['base.yaml'], patches: [{ path: 'patch.yaml' }] }),
    );
    return kustomizeBuild(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const patchOf = (containers: object[]) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'w' },
  spec: { template: { spec: { containers } } },
});

test('kustomize subset: containers and env merge by name, new items appended in order', () => {
  const [w] = build([
    patchOf([
      {
        name: 'a',
        env: [
          { name: 'X', value: '2' },
          { name: 'Y', valueFrom: { secretKeyRef: { name: 's', key: 'K' } } },
          { name: 'Z', value: '$(Y)' },
        ],
      },
      { name: 'c', image: 'c' },
    ]),
  ]);
  const containers = (w.spec as typeof deployment.spec).template.spec.containers;
  assert.deepEqual(
    containers.map((c) => c.name),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(containers[0].env, [
    { name: 'X', value: '2' },
    { name: 'Y', valueFrom: { secretKeyRef: { name: 's', key: 'K' } } },
    { name: 'Z', value: '$(Y)' },
  ]);
  assert.deepEqual(containers[0].ports, [{ containerPort: 1 }], 'untouched lists stay');
});

test('kustomize subset: a null deletes the key', () => {
  const [, s] = build([
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { K: null } },
  ]);
  assert.deepEqual(s.stringData, { L: 'w' });
});

test('kustomize subset: any other list merge, or a directive, is refused', () => {
  assert.throws(() => build([patchOf([{ name: 'a', ports: [{ containerPort: 2 }] }])]), /list merges/);
  assert.throws(() => build([patchOf([{ image: 'x' }])]), /needs a name/);
  assert.throws(() => build([patchOf([{ name: 'a', $patch: 'delete' }])]), /patch directives are outside/);
  // Lists anywhere else (here in a Secret) are refused too.
  assert.throws(() => build([{ ...config, stringData: { K: ['x'] } }]), /list merges/);
});
