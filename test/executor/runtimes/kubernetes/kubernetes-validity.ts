/**
 * What a real Kubernetes API server would refuse in the objects we hand it: each object against the
 * upstream OpenAPI schema of its kind (kubernetes-models, ajv), plus the rules the schemas cannot
 * express and the API server's validation enforces: DNS-1123 names (and the 63-character bound of a
 * Job name, which becomes its pods' `job-name` label value), qualified label keys and label values,
 * Secret keys, env names, unique container, volume and mount names, mounts of declared volumes,
 * requests not above limits, and, across a set of objects, `secretKeyRef`s and Secret volume items
 * naming keys the Secret has.
 */
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { compareQuantities, parseQuantity } from '../../../../src/lib/quantity.js';

type Validatable = { validate(): void };
/** Objects are read as the API server reads JSON: any field may hold anything. */
// biome-ignore lint/suspicious/noExplicitAny: walks arbitrary Kubernetes JSON, checked field by field
export type AnyObject = Record<string, any>;

const MODELS: Record<string, new (data: never) => Validatable> = {
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Pod': Pod,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
};

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** The env name rule of every Kubernetes version (1.30 relaxed it to printable ASCII but `=`). */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

export const isDnsLabel = (s: string): boolean => s.length <= 63 && DNS_LABEL.test(s);
export const isDnsSubdomain = (s: string, max = 253): boolean => s.length <= max && DNS_SUBDOMAIN.test(s);

/** Kinds whose names are DNS labels; every other kind here takes a subdomain. */
const LABEL_NAMED = new Set(['Namespace', 'Service']);

function qualifiedNameProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && !isDnsSubdomain(prefix))
    return `prefix ${JSON.stringify(prefix)} is not a DNS subdomain`;
  if (name.length > 63 || !QUALIFIED_NAME.test(name))
    return `name part ${JSON.stringify(name)} is not a qualified name`;
  return undefined;
}

function metaProblems(meta: AnyObject | undefined, path: string, problems: string[]): void {
  for (const [k, v] of Object.entries((meta?.labels ?? {}) as Record<string, string>)) {
    const p = qualifiedNameProblem(k);
    if (p) problems.push(`${path}.labels[${k}]: key ${p}`);
    if (v.length > 63 || !LABEL_VALUE.test(v))
      problems.push(`${path}.labels[${k}]: ${JSON.stringify(v)} is not a label value`);
  }
  for (const k of Object.keys((meta?.annotations ?? {}) as Record<string, string>)) {
    const p = qualifiedNameProblem(k);
    if (p) problems.push(`${path}.annotations[${k}]: key ${p}`);
  }
}

function resourceProblems(resources: AnyObject | undefined, path: string, problems: string[]): void {
  const limits = (resources?.limits ?? {}) as Record<string, string>;
  const requests = (resources?.requests ?? {}) as Record<string, string>;
  for (const [name, req] of Object.entries(requests)) {
    const lim = limits[name];
    const r = parseQuantity(String(req));
    const l = lim === undefined ? undefined : parseQuantity(String(lim));
    if (r && l && compareQuantities(r, l) > 0) {
      problems.push(
        `${path}.requests[${name}]: Invalid value: "${req}": must be less than or equal to ${name} limit of ${lim}`,
      );
    }
  }
}

/** The API server's PodSpec rules the schema does not hold. */
export function podSpecProblems(spec: AnyObject, path: string): string[] {
  const problems: string[] = [];
  const volumes = (spec.volumes ?? []) as AnyObject[];
  const volumeNames = new Set<string>();
  volumes.forEach((v, i) => {
    if (!isDnsLabel(v.name))
      problems.push(`${path}.volumes[${i}].name: ${JSON.stringify(v.name)} is not a DNS-1123 label`);
    if (volumeNames.has(v.name))
      problems.push(`${path}.volumes[${i}].name: Duplicate value: ${JSON.stringify(v.name)}`);
    volumeNames.add(v.name);
  });
  const containerNames = new Set<string>();
  for (const field of ['initContainers', 'containers'] as const) {
    ((spec[field] ?? []) as AnyObject[]).forEach((c, i) => {
      const at = `${path}.${field}[${i}]`;
      if (!isDnsLabel(c.name)) problems.push(`${at}.name: ${JSON.stringify(c.name)} is not a DNS-1123 label`);
      if (containerNames.has(c.name)) problems.push(`${at}.name: Duplicate value: ${JSON.stringify(c.name)}`);
      containerNames.add(c.name);
      const mountPaths = new Set<string>();
      ((c.volumeMounts ?? []) as AnyObject[]).forEach((m, j) => {
        if (!volumeNames.has(m.name))
          problems.push(`${at}.volumeMounts[${j}].name: Not found: ${JSON.stringify(m.name)}`);
        if (mountPaths.has(m.mountPath)) problems.push(`${at}.volumeMounts[${j}].mountPath: must be unique`);
        mountPaths.add(m.mountPath);
      });
      ((c.env ?? []) as AnyObject[]).forEach((e, j) => {
        if (!ENV_NAME.test(e.name))
          problems.push(`${at}.env[${j}].name: ${JSON.stringify(e.name)} is not a valid env name`);
      });
      resourceProblems(c.resources, `${at}.resources`, problems);
    });
  }
  if ((spec.containers ?? []).length === 0) problems.push(`${path}.containers: Required value`);
  return problems;
}

/** Problems of one object: its schema, then the naming and PodSpec rules. Empty when valid. */
export function objectProblems(obj: AnyObject): string[] {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const Model = MODELS[key];
  if (!Model) return [`${key}: no schema known to this check`];
  const problems: string[] = [];
  try {
    new Model(obj as never).validate();
  } catch (err) {
    problems.push(`${obj.kind} ${obj.metadata?.name}: schema: ${(err as Error).message}`);
  }
  const name = String(obj.metadata?.name ?? '');
  const where = `${obj.kind} ${JSON.stringify(name)}`;
  const nameOk = LABEL_NAMED.has(obj.kind) ? isDnsLabel(name) : isDnsSubdomain(name);
  if (!nameOk)
    problems.push(
      `${where}: metadata.name is not a DNS-1123 ${LABEL_NAMED.has(obj.kind) ? 'label' : 'subdomain'}`,
    );
  if (obj.kind === 'Job' && name.length > 63)
    problems.push(`${where}: metadata.name longer than 63 (its pods' job-name label)`);
  if (obj.metadata?.namespace !== undefined && !isDnsLabel(obj.metadata.namespace)) {
    problems.push(`${where}: metadata.namespace is not a DNS-1123 label`);
  }
  metaProblems(obj.metadata, `${where}: metadata`, problems);
  if (obj.kind === 'Secret' || obj.kind === 'ConfigMap') {
    for (const k of [...Object.keys(obj.data ?? {}), ...Object.keys(obj.stringData ?? {})]) {
      if (k.length > 253 || !SECRET_KEY.test(k))
        problems.push(`${where}: data key ${JSON.stringify(k)} is not a valid key`);
    }
  }
  const template = obj.kind === 'Pod' ? { metadata: obj.metadata, spec: obj.spec } : obj.spec?.template;
  if (template?.spec) {
    metaProblems(template.metadata, `${where}: template.metadata`, problems);
    problems.push(...podSpecProblems(template.spec, `${where}: spec`));
    if (obj.kind === 'Deployment') {
      const labels = (template.metadata?.labels ?? {}) as Record<string, string>;
      for (const [k, v] of Object.entries((obj.spec.selector?.matchLabels ?? {}) as Record<string, string>)) {
        if (labels[k] !== v)
          problems.push(`${where}: spec.template.metadata.labels: selector ${k}=${v} does not match`);
      }
    }
    if (obj.kind === 'Job' && !['Never', 'OnFailure'].includes(template.spec.restartPolicy)) {
      problems.push(`${where}: a Job's restartPolicy must be Never or OnFailure`);
    }
  }
  return problems;
}

/**
 * Problems of a set of objects created together: each object's, duplicate names of one kind, and
 * references from pods to the set's Secrets (`secretKeyRef` keys, Secret volume items) and PVCs.
 * A reference to an object not in the set (e.g. a PVC the operator made) is not checked.
 */
export function objectsProblems(objs: readonly AnyObject[]): string[] {
  const problems = objs.flatMap(objectProblems);
  const seen = new Set<string>();
  const secrets = new Map<string, Set<string>>();
  for (const o of objs) {
    const k = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    if (seen.has(k)) problems.push(`${k}: AlreadyExists`);
    seen.add(k);
    if (o.kind === 'Secret')
      secrets.set(
        o.metadata.name,
        new Set([...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {})]),
      );
  }
  for (const o of objs) {
    const spec = o.kind === 'Pod' ? o.spec : o.spec?.template?.spec;
    if (!spec) continue;
    const where = `${o.kind} ${o.metadata?.name}`;
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as AnyObject[]) {
      for (const e of (c.env ?? []) as AnyObject[]) {
        const ref = e.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;
        const keys = ref && secrets.get(ref.name);
        if (ref && keys && !keys.has(ref.key))
          problems.push(
            `${where}: container ${c.name} env ${e.name}: key ${ref.key} is not in Secret ${ref.name}`,
          );
      }
    }
    for (const v of (spec.volumes ?? []) as AnyObject[]) {
      const keys = v.secret && secrets.get(v.secret.secretName);
      for (const item of (keys ? (v.secret.items ?? []) : []) as AnyObject[]) {
        if (!keys!.has(item.key))
          problems.push(
            `${where}: volume ${v.name}: key ${item.key} is not in Secret ${v.secret.secretName}`,
          );
      }
    }
  }
  return problems;
}
