import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';

/**
 * The small subset of `kustomize build` that deploy/k8s uses, for CI machines without
 * kubectl: `resources` (files and directories), `patches` (strategic-merge patches of maps,
 * matched by apiVersion/kind/name; a null value deletes the key; a workload's `containers` and
 * their `env` merge by `name`, as in Kubernetes' strategic merge), `namespace`, `labels`
 * (metadata labels only) and `images`. Anything else in a kustomization, or a patch that would
 * merge any other list, is an error rather than silently ignored, so the manifests cannot drift
 * outside what this checks.
 */

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  resources?: string[];
  patches?: { path: string }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'labels', 'resources', 'patches', 'images']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume']);

/** Every document of a YAML file, failing on any parse error. */
export function readYamlDocuments(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  return list.map((d) => d.toJS() as unknown).filter((d) => d !== null);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// The lists Kubernetes' strategic merge patch merges by key (patchMergeKey in k8s.io/api
// core/v1 types.go) that these manifests patch; kustomize knows them only for built-in kinds.
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet']);
const MERGE_KEYED_LISTS = [
  /^spec\.template\.spec\.containers$/,
  /^spec\.template\.spec\.containers\[[^\]]+\]\.env$/,
];

function mergeMaps(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
  where: string,
  kind: string,
  path = '',
): void {
  for (const [key, value] of Object.entries(patch)) {
    const at = path === '' ? key : `${path}.${key}`;
    if (key.startsWith('$'))
      throw new Error(`${where}.${at}: patch directives are outside the supported subset`);
    if (value === null) delete target[key];
    else if (Array.isArray(value)) {
      if (!WORKLOADS.has(kind) || !MERGE_KEYED_LISTS.some((re) => re.test(at)))
        throw new Error(`${where}.${at}: list merges are outside the supported subset`);
      target[key] = mergeByName(target[key], value, where, kind, at);
    } else if (isMap(value) && isMap(target[key])) mergeMaps(target[key], value, where, kind, at);
    else target[key] = structuredClone(value);
  }
}

/** Items with a `name` already in the list are merged into it; new ones are appended, in order. */
function mergeByName(current: unknown, patch: unknown[], where: string, kind: string, at: string): unknown[] {
  const out = Array.isArray(current) ? [...(current as unknown[])] : [];
  for (const item of patch) {
    if (!isMap(item) || typeof item.name !== 'string')
      throw new Error(`${where}.${at}: every item of a merged list needs a name`);
    const i = out.findIndex((o) => isMap(o) && o.name === item.name);
    if (i === -1) out.push(structuredClone(item));
    else mergeMaps(out[i] as Record<string, unknown>, item, where, kind, `${at}[${item.name}]`);
  }
  return out;
}

function podSpecs(obj: K8sObject): Record<string, unknown>[] {
  const spec = obj.spec as { template?: { spec?: Record<string, unknown> } } | undefined;
  return spec?.template?.spec ? [spec.template.spec] : [];
}

/** Builds the kustomization in `dir` like `kustomize build dir` would, for the supported subset. */
export function kustomizeBuild(dir: string): K8sObject[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  for (const key of Object.keys(k)) {
    if (!SUPPORTED.has(key))
      throw new Error(`${dir}: kustomization field ${key} is outside the supported subset`);
  }
  const out: K8sObject[] = [];
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) out.push(...kustomizeBuild(path));
    else out.push(...(readYamlDocuments(path) as K8sObject[]));
  }
  for (const { path } of k.patches ?? []) {
    for (const patch of readYamlDocuments(resolve(dir, path)) as K8sObject[]) {
      const matches = out.filter(
        (o) =>
          o.apiVersion === patch.apiVersion &&
          o.kind === patch.kind &&
          o.metadata.name === patch.metadata.name,
      );
      if (matches.length !== 1) {
        throw new Error(
          `${path}: patch for ${patch.kind}/${patch.metadata.name} matches ${matches.length} resources`,
        );
      }
      mergeMaps(matches[0], patch, path, patch.kind);
    }
  }
  for (const { pairs, includeSelectors, includeTemplates } of k.labels ?? []) {
    if (includeSelectors || includeTemplates)
      throw new Error('labels with includeSelectors/includeTemplates are outside the subset');
    for (const o of out) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  }
  if (k.namespace) {
    for (const o of out) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  for (const image of k.images ?? []) {
    for (const o of out) {
      for (const spec of podSpecs(o)) {
        for (const c of [
          ...((spec.containers as { image: string }[]) ?? []),
          ...((spec.initContainers as { image: string }[]) ?? []),
        ]) {
          const [name, tag] = c.image.split(':');
          if (name !== image.name) continue;
          c.image = `${image.newName ?? name}:${image.newTag ?? tag ?? 'latest'}`;
        }
      }
    }
  }
  return out;
}
