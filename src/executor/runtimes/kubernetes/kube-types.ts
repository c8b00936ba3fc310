/** Minimal shapes of the Kubernetes objects the runtime writes or reads: only the fields it uses. */
export type KubeObject = Record<string, unknown>;

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  resourceVersion?: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; readOnly?: boolean }>;
  securityContext?: KubeObject;
}

export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: KubeObject[];
  restartPolicy: 'Never';
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  affinity?: KubeObject;
  tolerations?: KubeObject[];
  imagePullSecrets?: Array<{ name: string }>;
  securityContext?: KubeObject;
  activeDeadlineSeconds?: number;
  runtimeClassName?: string;
  automountServiceAccountToken?: boolean;
  enableServiceLinks?: boolean;
}

export interface KubeJob {
  apiVersion: 'batch/v1';
  kind: 'Job';
  metadata: ObjectMeta;
  spec: {
    backoffLimit: number;
    template: { metadata: ObjectMeta; spec: PodSpec };
  };
}

export interface ContainerStateSet {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode: number; reason?: string; message?: string };
}

export interface ContainerStatus {
  name: string;
  image?: string;
  state?: ContainerStateSet;
}

export interface Pod {
  metadata: ObjectMeta;
  spec?: Partial<PodSpec>;
  status?: {
    phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
    reason?: string;
    message?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}
