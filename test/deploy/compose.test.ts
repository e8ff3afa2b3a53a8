import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { createMetrics } from '../../src/observability/metrics.ts';
import { requireTool } from '../helpers/require-tool.ts';
import { readYamlDocuments } from './kustomize.ts';
import { isOpsRoute, isRole, rolePorts, undeclaredVariables } from './roles.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const at = (rel: string) => join(ROOT, rel);

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
}
interface Compose {
  services: Record<string, ComposeService>;
}

const compose = readYamlDocuments(at('docker-compose.yml'))[0] as Compose;
const tallyServices = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith('tally'));

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

test('every YAML file of the deployment parses', () => {
  const files = [at('docker-compose.yml'), ...yamlFiles(at('deploy'))];
  assert.ok(files.length >= 15, `found ${files.length} YAML files`);
  for (const file of files) assert.doesNotThrow(() => readYamlDocuments(file), file);
});

test('docker-compose.yml validates against the Compose Specification schema', () => {
  // The schema published by compose-spec, as vendored by the dclint package (devDependency).
  const schema = JSON.parse(
    readFileSync(at('node_modules/dclint/schemas/compose.schema.json'), 'utf8'),
  ) as object;
  // Its "$schema" URL lacks the trailing "#" Ajv keys draft-07 by; the meta-schema check is not the point here.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
  const validate = ajv.compile(schema);
  const ok = validate(compose);
  assert.ok(ok, JSON.stringify(validate.errors, null, 2));
  // And the validator is not vacuous: a misspelt key is rejected.
  assert.equal(validate({ services: { x: { image: 'a', portz: ['1:1'] } } }), false);
});

test('compose: every Tally role has a valid environment, the right ports and waits for migrate', async () => {
  const roles = tallyServices.map(([, s]) => s.command?.[0]).sort();
  assert.deepEqual(roles, ['ingest', 'migrate', 'process', 'query']);
  for (const [name, s] of tallyServices) {
    const env = s.environment ?? {};
    assert.deepEqual(undeclaredVariables(env), [], `${name}: variables not in src/config/schema.ts`);
    const role = s.command?.[0];
    if (role === 'migrate') {
      assert.equal(s.restart, 'no', 'migrate is one-shot');
      continue;
    }
    assert.ok(isRole(role), `${name} runs a role`);
    assert.equal(
      s.depends_on?.migrate?.condition,
      'service_completed_successfully',
      `${name} waits for migrate`,
    );
    const ports = rolePorts(role, env);
    if (role === 'process') {
      assert.equal(s.ports, undefined, 'process publishes no host port, so it can be scaled');
      assert.deepEqual(s.expose, [String(ports.http)]);
    } else {
      const published = (s.ports ?? []).map((p) => Number(p.split(':').at(-1)));
      assert.deepEqual(published.sort(), [ports.http, ports.grpc].filter((p) => p !== undefined).sort());
    }
  }
  assert.ok(await isOpsRoute('/health'));
});

interface PromConfig {
  scrape_configs: {
    job_name: string;
    metrics_path?: string;
    static_configs?: { targets: string[] }[];
    dns_sd_configs?: { names: string[]; port: number }[];
  }[];
}

test('Prometheus scrapes every Tally role at the port and path the code serves', async () => {
  const prom = readYamlDocuments(at('deploy/prometheus/prometheus.yml'))[0] as PromConfig;
  const scraped = new Map<string, number>();
  for (const job of prom.scrape_configs.filter((j) => j.job_name.startsWith('tally-'))) {
    assert.equal(job.metrics_path, '/metrics');
    for (const sc of job.static_configs ?? []) {
      for (const target of sc.targets) scraped.set(target.split(':')[0], Number(target.split(':')[1]));
    }
    for (const dns of job.dns_sd_configs ?? []) for (const n of dns.names) scraped.set(n, dns.port);
  }
  for (const [name, s] of tallyServices) {
    const role = s.command?.[0];
    if (!isRole(role)) continue;
    assert.equal(scraped.get(name), rolePorts(role, s.environment ?? {}).http, `Prometheus scrapes ${name}`);
  }
  assert.ok(await isOpsRoute('/metrics'));
});

test('promtool accepts the Prometheus configuration', (t) => {
  if (!requireTool(t, 'promtool', 'validates deploy/prometheus/prometheus.yml')) return;
  const r = spawnSync('promtool', ['check', 'config', at('deploy/prometheus/prometheus.yml')], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('Grafana: provisioning parses and the dashboard only uses metrics Tally exports', async () => {
  const datasource = readYamlDocuments(at('deploy/grafana/provisioning/datasources/prometheus.yml'))[0] as {
    datasources: { uid: string; url: string }[];
  };
  const provider = readYamlDocuments(at('deploy/grafana/provisioning/dashboards/tally.yml'))[0] as {
    providers: { options: { path: string } }[];
  };
  assert.equal(datasource.datasources[0].url, 'http://prometheus:9090');
  assert.ok('prometheus' in compose.services && 'grafana' in compose.services);
  assert.equal(provider.providers[0].options.path, '/var/lib/grafana/dashboards');
  const dashboard = JSON.parse(readFileSync(at('deploy/grafana/dashboards/tally.json'), 'utf8')) as {
    uid: string;
    panels: { datasource: { uid: string }; targets: { expr: string }[] }[];
  };
  assert.ok(dashboard.panels.length >= 8);
  // Every series the code can export (histograms as _bucket/_sum/_count).
  const metrics = createMetrics();
  const exported = new Set<string>(['up']);
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    exported.add(m.name);
    for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m.name + suffix);
  }
  for (const panel of dashboard.panels) {
    assert.equal(panel.datasource.uid, datasource.datasources[0].uid);
    for (const { expr } of panel.targets) {
      const names = expr.match(/\b(?:tally|analytics)_[a-z0-9_]+\b|\bup\b/g) ?? [];
      assert.ok(names.length > 0, expr);
      for (const n of names) assert.ok(exported.has(n), `${n} (in ${expr}) is exported by Tally`);
    }
  }
});

test('Dockerfile: multi-stage node:24-slim, non-root, one entrypoint for every role, ports and HEALTHCHECK', () => {
  const dockerfile = readFileSync(at('Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));
  assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-slim$/m);
  assert.equal(lines.filter((l) => /^FROM \$\{NODE_IMAGE\} AS \w+$/.test(l)).length, 2, 'two stages');
  const user = lines.findIndex((l) => l.startsWith('USER '));
  assert.ok(user > 0 && lines[user] === 'USER node', 'runs as the unprivileged node user');
  assert.ok(lines.findIndex((l) => l.startsWith('ENTRYPOINT')) > user);
  // With the V8 flags between (test/deploy/launch-flags.test.ts).
  assert.match(dockerfile, /^ENTRYPOINT \["node", .*"bin\/tally.js"\]$/m);
  assert.ok(existsSync(at('bin/tally.js')));
  const exposed = /^EXPOSE (.+)$/m.exec(dockerfile)![1].split(/\s+/).map(Number).sort();
  const defaults = [rolePorts('ingest', {}), rolePorts('query', {}), rolePorts('process', {})];
  assert.deepEqual(exposed, [...new Set(defaults.flatMap((p) => [p.http, p.grpc ?? []]).flat())].sort());
  assert.match(dockerfile, /HEALTHCHECK[^\n]*\\\n\s+CMD \["node", "src\/cli\/healthcheck.ts"\]/);
  for (const copied of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm))
    assert.ok(existsSync(at(copied[1])), copied[1]);
  const ignored = readFileSync(at('.dockerignore'), 'utf8');
  assert.match(ignored, /node_modules/);
  assert.doesNotMatch(ignored, /^src$/m, 'sources are part of the image');
});

test('image: the sources import only production dependencies (npm ci --omit=dev is enough)', () => {
  const pkg = JSON.parse(readFileSync(at('package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const files = (function walk(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') ? [path] : [];
    });
  })(at('src'));
  const missing = new Set<string>();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    // Type-only imports are erased when Node strips the types, so they need nothing at runtime.
    for (const m of text.matchAll(/^import (?!type )[^;]*?from '([^'.][^']*)'|import\('([^'.][^']*)'\)/gm)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('node:')) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!(name in pkg.dependencies)) missing.add(`${name} (${file.slice(ROOT.length)})`);
    }
  }
  assert.deepEqual([...missing], []);
});
