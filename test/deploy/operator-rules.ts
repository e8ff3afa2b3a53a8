import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { K8sObject } from './kustomize.ts';

/**
 * The Tally-facing rules of Strimzi 1.2.0 and CloudNativePG 1.30.0, written from their sources
 * (cited at each rule) for checking manifests without a cluster: the Services and Secrets they
 * create for a custom resource, the passwords CloudNativePG generates, and the environment the
 * kubelet gives a container.
 */

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
export interface Container {
  name: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
}
export interface Workload extends K8sObject {
  spec: { replicas?: number; template: { spec: { containers: Container[] } } };
}
export interface KafkaNodePool extends K8sObject {
  spec: { replicas: number; roles: string[] };
}
export interface Kafka extends K8sObject {
  spec: {
    kafka: { listeners: { name: string; port: number; type: string; tls: boolean }[]; config: Self };
    entityOperator?: { topicOperator?: object };
  };
}
export interface KafkaTopic extends K8sObject {
  spec: { topicName?: string; partitions: number; replicas: number; config: Self };
}
export interface CnpgCluster extends K8sObject {
  spec: {
    instances: number;
    bootstrap?: { initdb?: { database?: string; owner?: string; secret?: { name: string } } };
    postgresql?: { parameters?: Record<string, string> };
  };
}
export type Self = Record<string, unknown>;

export const ofKind = <T extends K8sObject>(objs: K8sObject[], kind: string) =>
  objs.filter((o) => o.kind === kind) as T[];
export const named = <T extends K8sObject>(objs: K8sObject[], kind: string, name: string) =>
  ofKind<T>(objs, kind).find((o) => o.metadata.name === name);

/** A Service the operators create: name → ports. */
export type OperatorServices = Map<string, number[]>;

export function strimziServices(objs: K8sObject[]): OperatorServices {
  // Strimzi 1.2.0 api/.../kafka/KafkaResources.java bootstrapServiceName: `<cluster>-kafka-bootstrap`,
  // serving every internal listener's port.
  return new Map(
    ofKind<Kafka>(objs, 'Kafka').map((k) => [
      `${k.metadata.name}-kafka-bootstrap`,
      k.spec.kafka.listeners.filter((l) => l.type === 'internal').map((l) => l.port),
    ]),
  );
}

// CloudNativePG 1.30.0 pkg/postgres: ServerPort = 5432; api/v1/cluster_types.go: the Services
// `<cluster>-rw` (primary), `-ro` (replicas), `-r` (any instance), the Secret `<cluster>-app`.
export const PG_PORT = 5432;

export function cnpgServices(objs: K8sObject[]): OperatorServices {
  return new Map(
    ofKind(objs, 'Cluster').flatMap((c) =>
      ['-rw', '-ro', '-r'].map((suffix) => [`${c.metadata.name}${suffix}`, [PG_PORT]] as const),
    ),
  );
}

/**
 * The application Secret CloudNativePG 1.30.0 writes for a Cluster bootstrapped by initdb without
 * its own secret (internal/controller/cluster_create.go reconcileAppUserSecret,
 * pkg/specs/secrets.go CreateSecret), with `password` standing for the generated one.
 */
export function cnpgAppSecret(cluster: CnpgCluster, password: string): [string, Record<string, string>] {
  const initdb = cluster.spec.bootstrap?.initdb ?? {};
  assert.equal(initdb.secret, undefined, 'the overlay lets the operator generate the password');
  // api/v1/cluster_funcs.go GetApplicationDatabaseName/Owner: both default to "app".
  const dbname = initdb.database ?? 'app';
  const username = initdb.owner ?? dbname;
  const host = `${cluster.metadata.name}-rw`;
  const userinfo = `${encodeURIComponent(username)}:${encodeURIComponent(password)}`;
  return [
    `${cluster.metadata.name}-app`,
    {
      username,
      user: username,
      password,
      dbname,
      host,
      port: String(PG_PORT),
      uri: `postgresql://${userinfo}@${host}.${cluster.metadata.namespace}:${PG_PORT}/${dbname}`,
    },
  ];
}

/** Secrets by name: those the manifests define and those the operators will create. */
export function secrets(objs: K8sObject[], password: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const s of ofKind<K8sObject & { stringData?: Record<string, string> }>(objs, 'Secret'))
    out.set(s.metadata.name, s.stringData ?? {});
  for (const c of ofKind<CnpgCluster>(objs, 'Cluster')) out.set(...cnpgAppSecret(c, password));
  return out;
}

/**
 * The environment the container sees, as the kubelet builds it: envFrom in order, then env in
 * order, each `$(NAME)` in a value replaced by a variable defined before it (`$$` is a literal
 * `$`; an undefined reference stays as written), values from Secrets taken verbatim.
 */
export function containerEnv(
  objs: K8sObject[],
  c: Container,
  secretsByName: Map<string, Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = named<K8sObject & { data?: Record<string, string> }>(
        objs,
        'ConfigMap',
        from.configMapRef.name,
      );
      assert.ok(cm, `ConfigMap ${from.configMapRef.name}`);
      Object.assign(env, cm.data);
    }
    if (from.secretRef) {
      const s = secretsByName.get(from.secretRef.name);
      assert.ok(s, `Secret ${from.secretRef.name}`);
      Object.assign(env, s);
    }
  }
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) {
      const value = secretsByName.get(ref.name)?.[ref.key];
      assert.ok(value !== undefined, `${e.name}: Secret ${ref.name} has no key ${ref.key}`);
      env[e.name] = value;
    } else {
      env[e.name] = (e.value ?? '').replace(/\$\$|\$\(([^)]*)\)/g, (whole, name?: string) =>
        name === undefined ? '$' : (env[name] ?? whole),
      );
    }
  }
  return env;
}

// The passwords CloudNativePG generates: go-password Generate(64, 10, 0, false, true), i.e. 54
// letters of either case and 10 digits in any order.
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('');
export const cnpgPassword = fc
  .tuple(
    fc.array(fc.constantFrom(...LETTERS), { minLength: 54, maxLength: 54 }),
    fc.array(fc.constantFrom(...'0123456789'.split('')), { minLength: 10, maxLength: 10 }),
    fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
  )
  .map(([letters, digits, order]) => {
    const chars = [...letters, ...digits];
    return chars
      .map((ch, i) => [order[i], ch] as const)
      .sort((a, b) => a[0] - b[0])
      .map(([, ch]) => ch)
      .join('');
  });
