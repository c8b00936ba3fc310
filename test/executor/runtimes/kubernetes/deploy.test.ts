import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadExecutorConfig } from '../../../../src/config/executor.js';
import { BLOCKED_V4, BLOCKED_V6 } from '../../../../src/executor/network/egress-rules.js';
import { buildSecret, buildSingleJob } from '../../../../src/executor/runtimes/kubernetes/convert.js';
import { KUBE_API_PERMISSIONS } from '../../../../src/executor/runtimes/kubernetes/kube-client.js';
import { jobBaseName, objectLabels } from '../../../../src/executor/runtimes/kubernetes/naming.js';
import { inputFiles } from '../../../../src/executor/runtimes/kubernetes/setup-script.js';
import { makeJob } from '../recording-logger.js';
import { type AnyObject, objectsProblems } from './kubernetes-validity.js';

const dir = new URL('../../../../deploy/kubernetes/', import.meta.url);

function kubectlAvailable(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'pipe', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
const hasKubectl = kubectlAvailable();
if (!hasKubectl) console.warn('skipping: kubectl is not available (kustomize render test)');

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };

const docsOf = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>);

/** The objects of the files kustomization.yaml lists, as written (no kustomize needed). */
function manifestsAsWritten(): Array<Record<string, unknown>> {
  const k = parse(readFileSync(new URL('kustomization.yaml', dir), 'utf8')) as { resources: string[] };
  return k.resources.flatMap((file) => docsOf(readFileSync(new URL(file, dir), 'utf8')));
}

describe('deploy/kubernetes', () => {
  it('grants the executor exactly the (resource, verb) pairs the runtime calls', () => {
    const docs = parseAllDocuments(readFileSync(new URL('rbac.yaml', dir), 'utf8')).map((d) => d.toJS());
    const role = docs.find((d) => d.kind === 'Role') as { rules: Rule[] };
    const granted = new Set(
      role.rules.flatMap((r) =>
        r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}|${res}|${v}`))),
      ),
    );
    const used = new Set(
      KUBE_API_PERMISSIONS.flatMap((p) => p.verbs.map((v) => `${p.apiGroup}|${p.resource}|${v}`)),
    );
    expect([...granted].sort()).toEqual([...used].sort());
    expect(docs.some((d) => d.kind === 'ClusterRole' || d.kind === 'ClusterRoleBinding')).toBe(false);
  });

  it('every manifest, the job NetworkPolicy among them, is valid against the upstream schemas', () => {
    const objs = manifestsAsWritten();
    expect(objs.map((o) => o.kind)).toContain('NetworkPolicy');
    expect(objs.length).toBeGreaterThanOrEqual(11);
    expect(objectsProblems(objs)).toEqual([]);
  });

  it("the executor's ConfigMap and Secret load as a configuration whose job objects are valid", () => {
    const objs = manifestsAsWritten() as Array<
      { kind: string; metadata: { name: string } } & Record<string, unknown>
    >;
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'executor')!;
    const secret = objs.find((o) => o.kind === 'Secret' && o.metadata.name === 'executor')!;
    const loaded = loadExecutorConfig({
      ...(cm.data as Record<string, string>),
      ...(secret.stringData as Record<string, string>),
    });
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
    if (!loaded.ok) return;
    const s = loaded.config.kubernetes;
    const job = makeJob([{ image: 'alpine:3', key: 'build', env: ['A=1'] }], { id: 1, token: 't' });
    const id = { executorName: 'executor-7d9f-x', hostname: 'executor-7d9f-x', job, queueName: 'batches' };
    const files = inputFiles(job, new Map());
    const base = jobBaseName(id);
    const built = buildSingleJob({ job, id, settings: s, frontendUrl: 'http://executor-server', files });
    expect(built.job.metadata.namespace).toBe('executor');
    expect(objectsProblems([buildSecret(job, base, id, files, s.namespace), built.job])).toEqual([]);
  });

  it.skipIf(!hasKubectl)('the rendered manifests are valid against the upstream schemas', () => {
    const out = execFileSync('kubectl', ['kustomize', dir.pathname], { encoding: 'utf8', timeout: 60_000 });
    const objs = docsOf(out);
    expect(objs).toHaveLength(manifestsAsWritten().length);
    expect(objectsProblems(objs)).toEqual([]);
  });

  it.skipIf(!hasKubectl)('renders with kubectl kustomize', () => {
    const out = execFileSync('kubectl', ['kustomize', dir.pathname], { encoding: 'utf8', timeout: 60_000 });
    const objs = parseAllDocuments(out).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string } } & AnyObject,
    );
    const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ConfigMap/executor',
        'Deployment/executor',
        'Deployment/executor-server',
        'Namespace/executor',
        'NetworkPolicy/executor-jobs',
        'Role/executor',
        'RoleBinding/executor',
        'Secret/executor',
        'Secret/executor-server',
        'Service/executor-server',
        'ServiceAccount/executor',
      ].sort(),
    );
    for (const o of objs) if (o.kind !== 'Namespace') expect(o.metadata.namespace).toBe('executor');
    const ex = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'executor')!;
    expect(ex.spec.template.spec.serviceAccountName).toBe('executor');
    // Drain: the grace period covers the longest job plus teardown.
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    expect(cm.data.EXECUTOR_MAXIMUM_RUNTIME_PER_JOB).toBe('30m');
    expect(ex.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(30 * 60);
    const server = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'executor-server')!;
    expect(server.spec.template.spec.containers[0].envFrom).toEqual([
      { secretRef: { name: 'executor-server' } },
    ]);
    const sec = objs.find((o) => o.kind === 'Secret' && o.metadata.name === 'executor-server')!;
    expect(Object.keys(sec.stringData)).toContain('DATABASE_URL');

    // The job pods' NetworkPolicy selects the labels the runtime puts on job pods, and only those.
    const policy = objs.find((o) => o.kind === 'NetworkPolicy')!;
    const jobLabels = objectLabels({
      executorName: 'e',
      hostname: 'h',
      job: { id: 7, queue: 'q', attempt: 1 },
    });
    const selects = (labels: Record<string, string>) =>
      (policy.spec.podSelector.matchExpressions as { key: string; operator: string }[]).every(
        (m) => m.operator === 'Exists' && m.key in labels,
      ) && Object.keys(policy.spec.podSelector.matchLabels ?? {}).length === 0;
    expect(selects(jobLabels)).toBe(true);
    expect(selects(ex.spec.template.metadata.labels)).toBe(false);
    expect(selects(server.spec.template.metadata.labels)).toBe(false);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const egress = policy.spec.egress as { to: AnyObject[]; ports?: { port: number }[] }[];
    // DNS and the queue server are allowed; public addresses without the
    // private, link-local and reserved ranges of the Docker rules.
    expect(egress[0]!.ports!.map((p) => p.port)).toEqual([53, 53]);
    expect(egress[1]!.to[0]!.podSelector.matchLabels).toEqual(server.spec.template.metadata.labels);
    // A NetworkPolicy's ports are the pod's (container) ports, not the Service's.
    expect(egress[1]!.ports!.map((p) => p.port)).toEqual(
      server.spec.template.spec.containers[0].ports.map((p: { containerPort: number }) => p.containerPort),
    );
    const v4 = egress[2]!.to.find((t) => t.ipBlock.cidr === '0.0.0.0/0')!;
    expect(v4.ipBlock.except).toEqual([...BLOCKED_V4]);
    const v6 = egress[2]!.to.find((t) => t.ipBlock.cidr === '::/0')!;
    expect(v6.ipBlock.except).toEqual([...BLOCKED_V6]);
  });
});
