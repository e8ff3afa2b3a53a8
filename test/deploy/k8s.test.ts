import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { MODELS } from './k8s-models.ts';
import { kustomizeBuild, type K8sObject } from './kustomize.ts';
import { isOpsRoute, isRole, rolePorts, undeclaredVariables } from './roles.ts';

const dir = (rel: string) => fileURLToPath(new URL(`../../deploy/k8s/${rel}`, import.meta.url));
const builds = { base: kustomizeBuild(dir('base')), dev: kustomizeBuild(dir('overlays/dev')) };

interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: { containers: Container[] };
    };
  };
}

const find = (objs: K8sObject[], kind: string, name: string) =>
  objs.find((o) => o.kind === kind && o.metadata.name === name);
const tallyWorkloads = (objs: K8sObject[]) =>
  objs.filter((o): o is Workload => o.kind === 'Deployment' && o.metadata.name.startsWith('tally-'));

/** The environment a container sees: envFrom ConfigMaps/Secrets, then its own env. */
function containerEnv(objs: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = find(objs, 'ConfigMap', from.configMapRef.name) as
        { data?: Record<string, string> } | undefined;
      assert.ok(cm, `ConfigMap ${from.configMapRef.name} exists`);
      Object.assign(env, cm.data);
    }
    if (from.secretRef) {
      const s = find(objs, 'Secret', from.secretRef.name) as
        { stringData?: Record<string, string> } | undefined;
      assert.ok(s, `Secret ${from.secretRef.name} exists`);
      Object.assign(env, s.stringData);
    }
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

for (const [name, objs] of Object.entries(builds)) {
  test(`k8s ${name}: every object validates against the pinned Kubernetes schemas`, () => {
    assert.ok(objs.length > 0);
    const seen = new Set<string>();
    for (const o of objs) {
      const model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(model, `no schema for ${o.apiVersion} ${o.kind} (add it to MODELS)`);
      assert.doesNotThrow(() => model.validate(o), `${o.kind}/${o.metadata.name}`);
      const id = `${o.kind}/${o.metadata.name}`;
      assert.ok(!seen.has(id), `duplicate ${id}`);
      seen.add(id);
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'tally', `${id} namespace`);
    }
  });

  test(`k8s ${name}: roles, ports, probes, env and scrape annotations match the code`, async () => {
    const workloads = tallyWorkloads(objs);
    assert.deepEqual(workloads.map((w) => w.metadata.name).sort(), [
      'tally-ingest',
      'tally-process',
      'tally-query',
    ]);
    for (const w of workloads) {
      const [c] = w.spec.template.spec.containers;
      const role = c.args?.[0];
      assert.ok(isRole(role), `${w.metadata.name} runs a tally role (args ${JSON.stringify(c.args)})`);
      const env = containerEnv(objs, c);
      assert.deepEqual(
        undeclaredVariables(env),
        [],
        `${w.metadata.name}: variables not in src/config/schema.ts`,
      );
      assert.doesNotThrow(() => loadConfig(env), `${w.metadata.name}: environment passes config validation`);
      const ports = rolePorts(role, env);
      const portByName = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      const containerPorts = (c.ports ?? []).map((p) => p.containerPort).sort();
      assert.deepEqual(containerPorts, [ports.http, ports.grpc].filter((p) => p !== undefined).sort());
      for (const [probe, path] of [
        [c.readinessProbe, '/ready'],
        [c.livenessProbe, '/health'],
      ] as const) {
        assert.ok(probe?.httpGet, `${w.metadata.name}: ${path} probe`);
        assert.equal(probe.httpGet.path, path);
        assert.ok(await isOpsRoute(path), `${path} is a route the code serves`);
        const port =
          typeof probe.httpGet.port === 'number' ? probe.httpGet.port : portByName.get(probe.httpGet.port);
        assert.equal(port, ports.http, `${w.metadata.name}: ${path} probe port`);
      }
      const annotations = w.spec.template.metadata.annotations ?? {};
      assert.equal(annotations['prometheus.io/scrape'], 'true');
      assert.equal(Number(annotations['prometheus.io/port']), ports.http);
      assert.equal(annotations['prometheus.io/path'], '/metrics');
      assert.ok(await isOpsRoute('/metrics'));
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, 'resource requests');
      assert.ok(c.resources?.limits?.memory, 'memory limit');
      assert.deepEqual(
        w.spec.selector.matchLabels,
        pick(w.spec.template.metadata.labels, w.spec.selector.matchLabels),
      );
    }
  });

  test(`k8s ${name}: processors ≤ partitions, HPAs for ingest and query, PDBs, Services that select pods`, () => {
    const process = find(objs, 'Deployment', 'tally-process') as Workload;
    const env = containerEnv(objs, process.spec.template.spec.containers[0]);
    const config = loadConfig(env);
    assert.ok(
      (process.spec.replicas ?? 1) * config.raw.NUM_WORKERS <= config.raw.TALLY_KAFKA_PARTITIONS,
      'processor replicas × NUM_WORKERS ≤ partitions',
    );
    const hpas = objs.filter((o) => o.kind === 'HorizontalPodAutoscaler') as (K8sObject & {
      spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number };
    })[];
    assert.deepEqual(hpas.map((h) => h.spec.scaleTargetRef.name).sort(), ['tally-ingest', 'tally-query']);
    for (const h of hpas) {
      assert.ok(find(objs, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name), 'HPA target exists');
      assert.ok(h.spec.minReplicas >= 1 && h.spec.minReplicas <= h.spec.maxReplicas);
    }
    const workloads = [
      ...tallyWorkloads(objs),
      ...(objs.filter((o) => o.kind === 'StatefulSet') as Workload[]),
    ];
    const pdbs = objs.filter((o) => o.kind === 'PodDisruptionBudget') as (K8sObject & {
      spec: { selector: { matchLabels: Record<string, string> } };
    })[];
    for (const w of tallyWorkloads(objs)) {
      assert.ok(
        pdbs.some((p) => matches(p.spec.selector.matchLabels, w.spec.template.metadata.labels)),
        `a PDB covers ${w.metadata.name}`,
      );
    }
    const services = objs.filter((o) => o.kind === 'Service') as (K8sObject & {
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: string | number }[] };
    })[];
    for (const s of services) {
      const pods = workloads.filter((w) => matches(s.spec.selector, w.spec.template.metadata.labels));
      assert.ok(pods.length > 0, `Service ${s.metadata.name} selects some pods`);
      for (const p of s.spec.ports) {
        const names = pods.flatMap((w) => w.spec.template.spec.containers.flatMap((c) => c.ports ?? []));
        assert.ok(
          names.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
          `Service ${s.metadata.name} targetPort ${p.targetPort} exists`,
        );
      }
    }
  });
}

test('k8s dev overlay: dependencies in-cluster, settings patched, image rewritten', () => {
  const objs = builds.dev;
  assert.deepEqual(
    objs
      .filter((o) => o.kind === 'StatefulSet')
      .map((o) => o.metadata.name)
      .sort(),
    ['kafka', 'postgres', 'redis'],
  );
  assert.equal(
    builds.base.filter((o) => o.kind === 'StatefulSet').length,
    0,
    'production base has no databases',
  );
  const ingest = find(objs, 'Deployment', 'tally-ingest') as Workload;
  const c = ingest.spec.template.spec.containers[0];
  assert.equal(c.image, 'tally:dev');
  assert.equal(
    (find(builds.base, 'Deployment', 'tally-ingest') as Workload).spec.template.spec.containers[0].image,
    'ghcr.io/tally-analytics/tally:0.1.0',
  );
  const env = containerEnv(objs, c);
  assert.equal(env.TALLY_ALLOW_UNAUTHENTICATED, 'true');
  assert.equal(env.KAFKA_TOPIC, 'incoming.user_activity', 'unpatched keys survive the patch');
  const config = loadConfig(env);
  // DATABASE_URL, KAFKA_BROKERS and REDIS_URL point at the dev Services and credentials.
  const db = new URL(config.database.kind === 'external' ? config.database.connectionString : '');
  const creds = find(objs, 'Secret', 'postgres-credentials') as unknown as {
    stringData: Record<string, string>;
  };
  assert.equal(decodeURIComponent(db.password), creds.stringData.POSTGRES_PASSWORD);
  assert.equal(db.username, creds.stringData.POSTGRES_USER);
  assert.equal(db.pathname, `/${creds.stringData.POSTGRES_DB}`);
  for (const [host, port] of [
    [db.hostname, Number(db.port)],
    ...config.kafka!.brokers.map((b) => [b.split(':')[0], Number(b.split(':')[1])] as const),
    [new URL(config.redisUrl!).hostname, Number(new URL(config.redisUrl!).port)],
  ] as const) {
    const svc = find(objs, 'Service', host) as { spec: { ports: { port: number }[] } } | undefined;
    assert.ok(svc, `Service ${host}`);
    assert.ok(
      svc.spec.ports.some((p) => p.port === port),
      `Service ${host} serves ${port}`,
    );
  }
});

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function pick(labels: Record<string, string>, like: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(like).map((k) => [k, labels[k]]));
}
