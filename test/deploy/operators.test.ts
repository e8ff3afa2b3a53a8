import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { dlqTopic } from '../../src/kafka/dead-letters.ts';
import { TOPIC_MAX_MESSAGE_BYTES } from '../../src/kafka/topics.ts';
import { loadCrdValidators } from './crd-schemas.ts';
import { MODELS } from './k8s-models.ts';
import {
  PG_PORT,
  cnpgPassword,
  cnpgServices,
  containerEnv,
  named,
  ofKind,
  secrets,
  strimziServices,
  type CnpgCluster,
  type Kafka,
  type KafkaNodePool,
  type KafkaTopic,
  type Self,
  type Workload,
} from './operator-rules.ts';
import { kustomizeBuild, type K8sObject } from './kustomize.ts';
import { undeclaredVariables } from './roles.ts';

/**
 * overlays/operators (Strimzi Kafka, CloudNativePG PostgreSQL) and overlays/operators-read-replica
 * (plus TALLY_READ_DATABASE_URL): every custom resource against the CRDs of the operator
 * releases vendored in fixtures/crds, and Tally's environment against the Services and Secrets
 * those operators create, named by their rules (cited below), since no cluster runs here.
 */

const at = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const CRDS = at('fixtures/crds');
const crds = loadCrdValidators(CRDS);
const builds = {
  operators: kustomizeBuild(at('../../deploy/k8s/overlays/operators')),
  'operators-read-replica': kustomizeBuild(at('../../deploy/k8s/overlays/operators-read-replica')),
};
const NAMESPACE = 'tally';

// The API server requires custom resource names to be DNS-1123 subdomains.
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Host and port of a PostgreSQL URL, the namespace suffix of `svc.namespace` dropped. */
function service(hostPort: { hostname: string; port: string }): [string, number] {
  const [name, namespace] = hostPort.hostname.split('.');
  if (namespace !== undefined) assert.equal(namespace, NAMESPACE);
  return [name, Number(hostPort.port)];
}

const tallyWorkloads = (objs: K8sObject[]) =>
  ofKind<Workload>(objs, 'Deployment').filter((d) => d.metadata.name.startsWith('tally-'));

// Variables the overlay sets only for Kubernetes to compose TALLY_READ_DATABASE_URL from.
const COMPOSITION_ONLY = new Set(['CNPG_APP_USERNAME', 'CNPG_APP_PASSWORD', 'CNPG_APP_DBNAME']);
const READ_URL = 'TALLY_READ_DATABASE_URL';
const readUrlDeclared = READ_URL in ConfigSchema.properties;

test('vendored CRDs: byte for byte the files README.md names, for the kinds the overlays use', () => {
  const readme = readFileSync(`${CRDS}/README.md`, 'utf8');
  const rows = [...readme.matchAll(/^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$/gm)];
  assert.equal(rows.length, 4, 'README.md lists each vendored file with its sha256');
  for (const [, file, sha256] of rows) {
    const actual = createHash('sha256')
      .update(readFileSync(`${CRDS}/${file}`))
      .digest('hex');
    assert.equal(actual, sha256, `${file} is unchanged since vendoring`);
  }
  assert.deepEqual(crds.kinds(), [
    'kafka.strimzi.io/v1/Kafka',
    'kafka.strimzi.io/v1/KafkaNodePool',
    'kafka.strimzi.io/v1/KafkaTopic',
    'postgresql.cnpg.io/v1/Cluster',
  ]);
});

for (const [name, objs] of Object.entries(builds)) {
  test(`k8s ${name}: custom resources validate against the operators' CRDs, the rest against Kubernetes 1.34`, () => {
    const seen = new Set<string>();
    for (const o of objs) {
      const id = `${o.kind}/${o.metadata.name}`;
      assert.ok(!seen.has(id), `duplicate ${id}`);
      seen.add(id);
      const model = MODELS[`${o.apiVersion}/${o.kind}`];
      if (model) assert.doesNotThrow(() => model.validate(o), id);
      else {
        assert.deepEqual(crds.errors(o), [], id);
        assert.match(o.metadata.name, DNS_SUBDOMAIN, `${id}: a valid object name`);
      }
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, NAMESPACE, `${id} namespace`);
    }
    assert.deepEqual(
      [...new Set(objs.filter((o) => !MODELS[`${o.apiVersion}/${o.kind}`]).map((o) => o.kind))].sort(),
      ['Cluster', 'Kafka', 'KafkaNodePool', 'KafkaTopic'],
    );
  });
}

test('k8s operators: the CRD check has teeth', () => {
  const objs = structuredClone(builds.operators);
  const topic = ofKind<KafkaTopic>(objs, 'KafkaTopic')[0];
  const cluster = ofKind<CnpgCluster>(objs, 'Cluster')[0];
  const errors = (o: K8sObject, change: (o: Self) => void) => {
    const copy = structuredClone(o) as unknown as Self;
    change(copy);
    return crds.errors(copy as unknown as K8sObject).join('\n');
  };
  assert.match(
    errors(topic, (t) => ((t.spec as Self).replicas = '3')),
    /\/spec\/replicas must be integer/,
  );
  assert.match(
    errors(topic, (t) => ((t.spec as Self).replica = 3)),
    /must NOT have additional properties.*"replica"/,
  );
  assert.match(
    errors(cluster, (c) => ((c.spec as Self).instances = 0)),
    /\/spec\/instances must be >= 1/,
  );
  assert.match(
    errors(cluster, (c) => ((c.spec as Self).imageCatalogRef = { kind: 'ImageCatalog', name: 'x' })),
    /imageName and imageCatalogRef are mutually exclusive/,
  );
  assert.match(
    errors(cluster, (c) => ((c.spec as Self).serviceAccountName = 'x')),
    /CEL rule not translated/,
  );
});

test('k8s operators: Kafka with 3 brokers, 3 controllers, replication 3 and min.insync.replicas 2', () => {
  const objs = builds.operators;
  const [kafka] = ofKind<Kafka>(objs, 'Kafka');
  assert.equal(ofKind(objs, 'Kafka').length, 1);
  // Strimzi: a KafkaNodePool belongs to the Kafka its strimzi.io/cluster label names.
  const pools = ofKind<KafkaNodePool>(objs, 'KafkaNodePool');
  for (const p of pools) assert.equal(p.metadata.labels?.['strimzi.io/cluster'], kafka.metadata.name);
  const nodes = (role: string) =>
    pools.filter((p) => p.spec.roles.includes(role)).reduce((n, p) => n + p.spec.replicas, 0);
  assert.equal(nodes('broker'), 3);
  assert.equal(nodes('controller'), 3);
  const config = kafka.spec.kafka.config;
  assert.equal(config['default.replication.factor'], 3);
  assert.equal(config['min.insync.replicas'], 2);
  assert.equal(config['offsets.topic.replication.factor'], 3);
  assert.ok(kafka.spec.entityOperator?.topicOperator, 'the Topic Operator reconciles the KafkaTopics');
});

test("k8s operators: the Kafka containers meet the namespace's restricted Pod Security Standard", () => {
  const objs = builds.operators;
  const ns = ofKind(objs, 'Namespace')[0];
  assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  const [kafka] = ofKind<Kafka>(objs, 'Kafka');
  const spec = kafka.spec as unknown as {
    kafka: { template?: { kafkaContainer?: { securityContext?: Self } } };
    entityOperator: Self & { template?: { topicOperatorContainer?: { securityContext?: Self } } };
  };
  // Strimzi's default security provider is the baseline one: every container it would start
  // needs the restricted context from the templates. Only these two kinds of container run.
  assert.deepEqual(Object.keys(kafka.spec).sort(), ['entityOperator', 'kafka']);
  assert.deepEqual(Object.keys(spec.entityOperator).sort(), ['template', 'topicOperator']);
  for (const p of ofKind<KafkaNodePool>(objs, 'KafkaNodePool'))
    assert.equal((p.spec as Self).template, undefined, `${p.metadata.name} keeps the Kafka's template`);
  for (const context of [
    spec.kafka.template?.kafkaContainer?.securityContext,
    spec.entityOperator.template?.topicOperatorContainer?.securityContext,
  ]) {
    // https://kubernetes.io/docs/concepts/security/pod-security-standards/ (Restricted).
    assert.equal(context?.allowPrivilegeEscalation, false);
    assert.equal(context?.runAsNonRoot, true);
    assert.deepEqual(context?.seccompProfile, { type: 'RuntimeDefault' });
    assert.deepEqual(context?.capabilities, { drop: ['ALL'] });
  }
});

test('k8s operators: a KafkaTopic for every topic Tally uses, as Tally would create it, replicated 3 times', () => {
  const objs = builds.operators;
  const [kafka] = ofKind<Kafka>(objs, 'Kafka');
  const [process] = tallyWorkloads(objs).filter((w) => w.metadata.name === 'tally-process');
  const env = containerEnv(objs, process.spec.template.spec.containers[0], secrets(objs, 'p'));
  const config = loadConfig(env);
  assert.ok(config.kafka);
  const wanted = [config.kafka.topic, ...config.kafka.extraTopics].flatMap((t) => [t, dlqTopic(t)]);
  const topics = ofKind<KafkaTopic>(objs, 'KafkaTopic');
  // Strimzi: the Kafka topic is spec.topicName, else metadata.name.
  assert.deepEqual(topics.map((t) => t.spec.topicName ?? t.metadata.name).sort(), [...wanted].sort());
  for (const t of topics) {
    const id = t.spec.topicName ?? t.metadata.name;
    assert.equal(t.metadata.labels?.['strimzi.io/cluster'], kafka.metadata.name, `${id}: its Kafka`);
    assert.equal(t.spec.partitions, config.raw.TALLY_KAFKA_PARTITIONS, `${id}: partitions`);
    assert.equal(t.spec.replicas, 3, `${id}: replicas`);
    assert.equal(t.spec.config['min.insync.replicas'], 2, `${id}: min.insync.replicas`);
    assert.equal(t.spec.config['max.message.bytes'], TOPIC_MAX_MESSAGE_BYTES, `${id}: max.message.bytes`);
  }
  assert.ok(
    (process.spec.replicas ?? 1) * config.raw.NUM_WORKERS <= config.raw.TALLY_KAFKA_PARTITIONS,
    'processor replicas × NUM_WORKERS ≤ partitions',
  );
});

test('k8s operators: each role reaches the Strimzi bootstrap and the CloudNativePG primary, for any generated password', () => {
  const objs = builds.operators;
  const [cluster] = ofKind<CnpgCluster>(objs, 'Cluster');
  assert.ok(cluster.spec.instances >= 2, 'a primary and at least one replica');
  const services = new Map([...strimziServices(objs), ...cnpgServices(objs)]);
  fc.assert(
    fc.property(cnpgPassword, (password) => {
      const secretsByName = secrets(objs, password);
      for (const w of tallyWorkloads(objs)) {
        const env = containerEnv(objs, w.spec.template.spec.containers[0], secretsByName);
        const id = w.metadata.name;
        assert.deepEqual(undeclaredVariables(env), [], `${id}: variables not in src/config/schema.ts`);
        const config = loadConfig(env);
        for (const broker of config.kafka!.brokers) {
          const [host, port] = broker.split(':');
          assert.ok(services.get(host)?.includes(Number(port)), `${id}: broker ${broker} is a bootstrap`);
        }
        assert.equal(config.database.kind, 'external');
        const db = new URL(config.database.kind === 'external' ? config.database.connectionString : '');
        assert.deepEqual(service(db), [`${cluster.metadata.name}-rw`, PG_PORT], `${id}: the primary`);
        assert.equal(decodeURIComponent(db.username), cluster.spec.bootstrap?.initdb?.owner);
        assert.equal(decodeURIComponent(db.password), password);
        assert.equal(db.pathname, `/${cluster.spec.bootstrap?.initdb?.database}`);
      }
    }),
    { numRuns: 50 },
  );
});

test('k8s operators: max_connections holds every pool at the most the roles scale to', () => {
  const objs = builds.operators;
  const [cluster] = ofKind<CnpgCluster>(objs, 'Cluster');
  const maxConnections = Number(cluster.spec.postgresql?.parameters?.max_connections ?? 100);
  const secretsByName = secrets(objs, 'p');
  const role = (name: string) => {
    const w = named<Workload>(objs, 'Deployment', name)!;
    const hpa = named<K8sObject & { spec: { maxReplicas: number } }>(objs, 'HorizontalPodAutoscaler', name);
    const config = loadConfig(containerEnv(objs, w.spec.template.spec.containers[0], secretsByName));
    return { most: hpa?.spec.maxReplicas ?? w.spec.replicas ?? 1, raw: config.raw };
  };
  const [ingest, query, process] = ['tally-ingest', 'tally-query', 'tally-process'].map(role);
  // src/cli/ingest-role.ts pools 2 connections (API keys), query and process TALLY_DB_POOL_SIZE;
  // processors beyond the partitions would sit idle, so scaling them stops there.
  const pools =
    ingest.most * 2 +
    query.most * query.raw.TALLY_DB_POOL_SIZE +
    process.raw.TALLY_KAFKA_PARTITIONS * process.raw.TALLY_DB_POOL_SIZE;
  // Pools get at most half of what superuser_reserved_connections (3) leaves: the other half is
  // for each process's dedicated connections (LISTEN, backfill), admin sessions and migrations.
  assert.ok(
    pools <= (maxConnections - 3) / 2,
    `${pools} pooled connections vs max_connections ${maxConnections}`,
  );
});

test('k8s operators-read-replica: TALLY_READ_DATABASE_URL is the CloudNativePG replica with the app credentials', () => {
  const objs = builds['operators-read-replica'];
  const [cluster] = ofKind<CnpgCluster>(objs, 'Cluster');
  const services = cnpgServices(objs);
  fc.assert(
    fc.property(cnpgPassword, (password) => {
      const secretsByName = secrets(objs, password);
      const app = secretsByName.get(`${cluster.metadata.name}-app`)!;
      for (const w of tallyWorkloads(objs)) {
        const env = containerEnv(objs, w.spec.template.spec.containers[0], secretsByName);
        if (w.metadata.name !== 'tally-query') {
          assert.equal(env[READ_URL], undefined, `${w.metadata.name} does not read from the replica`);
          continue;
        }
        const read = new URL(env[READ_URL]);
        const [host, port] = service(read);
        assert.equal(host, `${cluster.metadata.name}-ro`);
        assert.ok(services.get(host)?.includes(port));
        assert.equal(decodeURIComponent(read.username), app.username);
        assert.equal(decodeURIComponent(read.password), app.password);
        assert.equal(read.pathname, `/${app.dbname}`);
        assert.equal(read.protocol, 'postgresql:');
        const unknown = undeclaredVariables(env).filter((v) => !COMPOSITION_ONLY.has(v));
        assert.deepEqual(unknown, readUrlDeclared ? [] : [READ_URL]);
        // Until Tally declares the variable, its config refuses it: the reason this overlay is
        // separate from overlays/operators (deploy/README.md).
        if (readUrlDeclared) loadConfig(env);
        else assert.throws(() => loadConfig(env), new RegExp(`${READ_URL}: unknown Tally variable`));
      }
    }),
    { numRuns: 50 },
  );
});
