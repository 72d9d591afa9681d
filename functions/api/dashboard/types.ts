/** The API replies the dashboard reads (API.md shapes, only the fields it shows). */
export interface Project {
  id: string;
  name: string;
  createdAt: string;
  environments?: Environment[];
}
export interface Environment {
  id: string;
  name: string;
  projectId: string;
}
export interface Service {
  id: string;
  projectId: string;
  name: string;
  image: string;
  containerPort: number;
  healthcheckPath: string;
  migrateCommand: string | null;
  strategy: string;
  env: Record<string, string>;
  hosts?: { environment: string; host: string }[];
  createdAt: string;
}
export interface Step {
  name: string;
  status: 'running' | 'succeeded' | 'failed';
  attempt: number;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}
export interface Release {
  id: string;
  serviceId: string;
  environmentId: string;
  image: string;
  imageDigest: string | null;
  gitSha: string | null;
  status: string;
  previousReleaseId: string | null;
  nodeId: string | null;
  upstream: string | null;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  steps?: Step[];
}
export interface LogLine {
  seq: number;
  at: string;
  stream: 'system' | 'stdout' | 'stderr';
  line: string;
}
export interface Domain {
  id: string;
  hostname: string;
  serviceId: string;
  environmentId: string;
  status: string;
  dnsStatus: string;
  tlsStatus: string;
  lastError: string | null;
  checkedAt: string | null;
  createdAt: string;
  records: { type: string; name: string; value: string }[];
}
export interface NodeRecord {
  id: string;
  name: string;
  dockerHost: string;
  address: string;
  labels: Record<string, string>;
  drainMode: boolean;
  createdAt: string;
}

export const terminal = ['completed', 'failed', 'rolled_back'];
