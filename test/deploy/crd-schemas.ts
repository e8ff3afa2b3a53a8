import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { readYamlDocuments } from './kustomize.ts';

/**
 * Validators for custom resources built from the openAPIV3Schema of vendored
 * CustomResourceDefinitions (test/deploy/fixtures/crds), judging an object the way the API
 * server does on `kubectl apply`, within what a JSON Schema validator can express:
 * - an unknown field is an error: kubectl's default `--validate=strict` rejects what the API
 *   server would otherwise prune, unless the schema says x-kubernetes-preserve-unknown-fields;
 * - x-kubernetes-int-or-string, and x-kubernetes-list-type `set` / `map` (unique items, unique
 *   x-kubernetes-list-map-keys) are checked; the int32/int64 formats bound integers;
 * - x-kubernetes-validations are CEL, which this does not evaluate: the rules a manifest reaches
 *   must be in CEL_RULES, hand-translated, and reaching any other rule is an error.
 * `metadata` is ObjectMeta, which the API server checks itself, not the CRD: left to the caller.
 */

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: boolean | Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  not?: Schema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-map-keys'?: string[];
  [keyword: string]: unknown;
}

interface Crd {
  kind: 'CustomResourceDefinition';
  spec: {
    group: string;
    names: { kind: string };
    versions: { name: string; served: boolean; schema: { openAPIV3Schema: Schema } }[];
  };
}

type Self = Record<string, unknown>;

/**
 * The CEL rules of the vendored CRDs that the manifests reach, rule text → the same predicate in
 * TypeScript. Transition rules (those reading oldSelf) hold on create, where there is no old object.
 */
const CEL_RULES: Record<string, (self: Self) => boolean> = {
  '!(has(self.imageCatalogRef) && has(self.imageName))': (self) =>
    !('imageCatalogRef' in self && 'imageName' in self),
  "!has(self.builtinLocale) || self.localeProvider == 'builtin'": (self) =>
    !('builtinLocale' in self) || self.localeProvider === 'builtin',
  "!has(self.icuLocale) || self.localeProvider == 'icu'": (self) =>
    !('icuLocale' in self) || self.localeProvider === 'icu',
  "!has(self.icuRules) || self.localeProvider == 'icu'": (self) =>
    !('icuRules' in self) || self.localeProvider === 'icu',
};

const INT32 = 2 ** 31;

function kubernetesAjv(): Ajv {
  // strictTypes off: the CRDs put `pattern` beside anyOf [integer, string] without a `type`,
  // which is valid OpenAPI; every other strict check stays, so an unknown keyword still fails.
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n) => Number.isInteger(n) && n >= -INT32 && n < INT32,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n) => Number.isInteger(n) });
  ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i);
  // Applied by structural() below (additionalProperties), or pure annotations (OpenAPI's example).
  for (const keyword of [
    'example',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-map-type',
    'x-kubernetes-list-map-keys',
  ]) {
    ajv.addKeyword(keyword);
  }
  ajv.addKeyword({
    keyword: 'x-kubernetes-int-or-string',
    schemaType: 'boolean',
    validate: (on: boolean, data: unknown) => !on || typeof data === 'string' || Number.isInteger(data),
  });
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    schemaType: 'string',
    type: 'array',
    validate: (listType: string, data: unknown[], parent?: Schema) => {
      if (listType === 'atomic') return true;
      const keys = listType === 'map' ? (parent?.['x-kubernetes-list-map-keys'] ?? []) : undefined;
      const identity = (item: unknown) => JSON.stringify(keys ? keys.map((k) => (item as Self)[k]) : item);
      return new Set(data.map(identity)).size === data.length;
    },
  });
  const cel = (rules: { rule: string; message?: string }[], data: Self): boolean => {
    const errors: Partial<ErrorObject>[] = [];
    for (const { rule, message } of rules) {
      const check = CEL_RULES[rule];
      if (!check) errors.push({ message: `reaches a CEL rule not translated in CEL_RULES: ${rule}` });
      else if (!check(data)) errors.push({ message: message ?? `fails ${rule}` });
    }
    validateCel.errors = errors;
    return errors.length === 0;
  };
  const validateCel = Object.assign(cel, { errors: [] as Partial<ErrorObject>[] });
  ajv.addKeyword({ keyword: 'x-kubernetes-validations', schemaType: 'array', validate: validateCel });
  return ajv;
}

/** The schema with unknown fields forbidden wherever Kubernetes would not keep them. */
function structural(schema: Schema, isRoot = true): Schema {
  const out: Schema = { ...schema };
  if (out.properties) {
    out.properties = Object.fromEntries(
      Object.entries(out.properties).map(([name, sub]) => [
        name,
        // ObjectMeta is validated by the API server, not by the CRD's `metadata: {type: object}`.
        isRoot && name === 'metadata' ? sub : structural(sub, false),
      ]),
    );
  }
  if (out.items) out.items = structural(out.items, false);
  if (typeof out.additionalProperties === 'object')
    out.additionalProperties = structural(out.additionalProperties, false);
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (out[key]) out[key] = out[key].map((s) => structural(s, false));
  }
  if (out.not) out.not = structural(out.not, false);
  if (
    out.type === 'object' &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

export interface CrdValidators {
  /** `group/version/Kind` of every served version, e.g. `kafka.strimzi.io/v1/Kafka`. */
  kinds(): string[];
  /** The schema errors of `obj` (empty when valid); throws when no vendored CRD serves its kind. */
  errors(obj: { apiVersion: string; kind: string }): string[];
}

/** Compiles every served version of every CRD in the YAML files of `dir`. */
export function loadCrdValidators(dir: string): CrdValidators {
  const ajv = kubernetesAjv();
  const validators = new Map<string, ValidateFunction>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const crd of readYamlDocuments(join(dir, file)) as Crd[]) {
      if (crd.kind !== 'CustomResourceDefinition') continue;
      for (const version of crd.spec.versions.filter((v) => v.served)) {
        const key = `${crd.spec.group}/${version.name}/${crd.spec.names.kind}`;
        validators.set(key, ajv.compile(structural(version.schema.openAPIV3Schema)));
      }
    }
  }
  return {
    kinds: () => [...validators.keys()].sort(),
    errors(obj) {
      const key = `${obj.apiVersion}/${obj.kind}`;
      const validate = validators.get(key);
      if (!validate) throw new Error(`no vendored CRD serves ${key}`);
      if (validate(obj)) return [];
      return (validate.errors ?? []).map(
        (e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
      );
    },
  };
}
