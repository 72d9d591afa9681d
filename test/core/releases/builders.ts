import type {
  Environment,
  NodeRecord,
  Org,
  Project,
  Release,
  SecretRecord,
  Service,
} from '../../../core/models.ts';

/** Test data mothers: a valid record with fixed values, overridable field by field. */

export const at = '2026-01-01T00:00:00.000Z';

export function anOrg(o: Partial<Org> = {}): Org {
  return { id: 'org_000001', name: 'acme', createdAt: at, ...o };
}

export function aProject(o: Partial<Project> = {}): Project {
  return { id: 'prj_000001', orgId: 'org_000001', name: 'shop', createdAt: at, ...o };
}

export function anEnvironment(o: Partial<Environment> = {}): Environment {
  return {
    id: 'env_000001',
    orgId: 'org_000001',
    projectId: 'prj_000001',
    name: 'production',
    createdAt: at,
    ...o,
  };
}

export function aService(o: Partial<Service> = {}): Service {
  return {
    id: 'svc_000001',
    orgId: 'org_000001',
    projectId: 'prj_000001',
    name: 'web',
    kind: 'web',
    image: 'shop/web:1',
    containerPort: 8080,
    healthcheckPath: '/health',
    migrateCommand: null,
    strategy: 'blue_green',
    replicas: 1,
    env: { NODE_ENV: 'production' },
    memoryMb: 256,
    cpus: 0.5,
    health: { intervalMs: 1000, timeoutMs: 2000, successes: 2, deadlineMs: 30_000 },
    workerHealth: null,
    warmSeconds: 300,
    drainSeconds: 30,
    sticky: false,
    git: null,
    gitCredentialKind: null,
    gitPublicKey: null,
    sealedGitCredential: null,
    sealedBuildSecrets: {},
    createdAt: at,
    ...o,
  };
}

export function aNode(o: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id: 'node_000001',
    orgId: 'org_000001',
    name: 'node-1',
    kind: 'engine',
    dockerHost: 'unix:///var/run/docker.sock',
    address: '127.0.0.1',
    labels: {},
    drainMode: false,
    createdAt: at,
    sealedTls: null,
    sealedSsh: null,
    credentialsUpdatedAt: null,
    // The local engine, so the operator's.
    operatorRegistered: true,
    reachability: 'unknown',
    reachabilitySince: null,
    lastSeenAt: null,
    missedChecks: 0,
    ...o,
  };
}

export function aRelease(o: Partial<Release> = {}): Release {
  return {
    id: 'rel_000001',
    orgId: 'org_000001',
    serviceId: 'svc_000001',
    environmentId: 'env_000001',
    image: 'shop/web:1',
    imageDigest: null,
    gitSha: null,
    gitRef: null,
    status: 'queued',
    previousReleaseId: null,
    nodeId: 'node_000001',
    containerId: null,
    upstream: null,
    error: null,
    createdAt: at,
    updatedAt: at,
    finishedAt: null,
    ...o,
  };
}

export function aSecret(o: Partial<SecretRecord> = {}): SecretRecord {
  return {
    id: 'sec_000001',
    orgId: 'org_000001',
    serviceId: 'svc_000001',
    environmentId: 'env_000001',
    name: 'DATABASE_URL',
    sealed: 'sealed',
    createdAt: at,
    updatedAt: at,
    ...o,
  };
}
