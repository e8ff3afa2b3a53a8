import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { kustomizeBuild } from './kustomize.ts';

/**
 * kubernetes-models' runtime validators check types and required fields but accept unknown
 * keys, so a typo such as `readinesProbe` would pass. Its TypeScript interfaces are exact,
 * though, and TypeScript rejects excess properties in object literals: type-check every
 * built object as a literal of its interface.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INTERFACES: Record<string, [module: string, name: string]> = {
  'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'IConfigMap'],
  'v1/Namespace': ['kubernetes-models/v1/Namespace', 'INamespace'],
  'v1/Secret': ['kubernetes-models/v1/Secret', 'ISecret'],
  'v1/Service': ['kubernetes-models/v1/Service', 'IService'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  'apps/v1/StatefulSet': ['kubernetes-models/apps/v1/StatefulSet', 'IStatefulSet'],
  'autoscaling/v2/HorizontalPodAutoscaler': [
    'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    'IHorizontalPodAutoscaler',
  ],
  'policy/v1/PodDisruptionBudget': [
    'kubernetes-models/policy/v1/PodDisruptionBudget',
    'IPodDisruptionBudget',
  ],
};

function typeErrors(objects: { apiVersion: string; kind: string }[], label: string): string[] {
  const dir = join(ROOT, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `k8s-strict-${label}-${randomUUID()}.ts`);
  const used = new Set<string>();
  const body = objects.map((o, i) => {
    const key = `${o.apiVersion}/${o.kind}`;
    const iface = INTERFACES[key];
    assert.ok(iface, `no interface for ${key}`);
    used.add(key);
    return `export const o${i}: ${iface[1]} = ${JSON.stringify(o, null, 2)};`;
  });
  const imports = [...used].map((k) => `import type { ${INTERFACES[k][1]} } from '${INTERFACES[k][0]}';`);
  writeFileSync(file, [...imports, ...body].join('\n'));
  try {
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const where =
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      const line = where ? d.file!.text.split('\n')[where.line].trim() : '';
      return `${ts.flattenDiagnosticMessageText(d.messageText, '\n')} at: ${line}`;
    });
  } finally {
    rmSync(file, { force: true });
  }
}

test(
  'k8s manifests: no unknown or misspelt fields (exact Kubernetes 1.34 types)',
  { timeout: 120_000 },
  () => {
    for (const [label, rel] of [
      ['base', 'deploy/k8s/base'],
      ['dev', 'deploy/k8s/overlays/dev'],
      // Its custom resources are checked against the operators' CRDs in operators.test.ts; it
      // holds every built-in object of overlays/operators too.
      ['operators-read-replica', 'deploy/k8s/overlays/operators-read-replica'],
    ] as const) {
      const builtIn = kustomizeBuild(join(ROOT, rel)).filter(
        (o) => `${o.apiVersion}/${o.kind}` in INTERFACES,
      );
      const errors = typeErrors(builtIn, label);
      assert.deepEqual(errors, [], `${rel}:\n${errors.join('\n')}`);
    }
    // The check has teeth: a misspelt probe is reported.
    const typo = typeErrors(
      [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          spec: {
            selector: {},
            template: { spec: { containers: [{ name: 'a', image: 'b', readinesProbe: {} }] } },
          },
        } as { apiVersion: string; kind: string },
      ],
      'typo',
    );
    assert.equal(typo.length, 1);
    assert.match(typo[0], /readinesProbe/);
  },
);
