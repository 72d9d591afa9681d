/**
 * The set-up the data-service suites share: a self-hosted control plane with its workers on
 * the real Docker Engine (the offline data images built), a signed-up org with a project and
 * the local engine registered as its node; data services created through the API and polled
 * until they settle; one-off clients on a data service's project network; and the clean-up
 * of everything the run made (containers by org and run label, volumes, networks).
 * @example const s = useDataSuite(import.meta.url, { email: 'rotation@example.com' });
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';
import { NodeBackupCodec } from '../../adapters/backup/node-codec.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { backupKeyContext } from '../../core/data-services/backups.ts';
import type { BackupManifest } from '../../core/models.ts';
import { aDataService, aDataServiceBackup, aNode } from '../contracts/store/builders.ts';
import { startSelfhostApi } from './api.ts';
import { dockerTarget, ensureDataImages, removeContainersByLabel, testRun } from './docker.ts';
import type { Requester } from './http.ts';

const exec = promisify(execFile);
export const docker = (...args: string[]): Promise<string> =>
  exec('docker', args, { timeout: 60_000 }).then((r) => r.stdout.trim());
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type ApiSettings = NonNullable<Parameters<typeof startSelfhostApi>[0]>;
type Api = Awaited<ReturnType<typeof startSelfhostApi>>;

/** A data service as the API shows it (the fields the suites read; the rest passes through). */
export type DataView = {
  id: string;
  name: string;
  engine: string;
  version: string;
  status: string;
  error: string | null;
  host: string;
  network: string;
  volume: string;
  /** The answer's HTTP status when it is not 200 (a deleted data service answers 404). */
  answered?: number;
} & Record<string, unknown>;

/** One install: the API with its workers, an org (signed up as `email`), its project and node. */
export interface DataInstall {
  api: Api;
  request: Requester;
  token: string;
  orgId: string;
  projectId: string;
  /** The request options of the org's owner, with `body` when given. */
  h(body?: unknown): { token: string; headers: Record<string, string>; body?: unknown };
}

/** The workers' settings every data suite runs with unless it says otherwise. */
const defaults: ApiSettings = {
  workers: true,
  release: { maxStepAttempts: 2, dataReadyAttempts: 90 },
};

/** Starts an install (after the data images are built) and registers the local engine as its node. */
export async function startDataInstall(
  email: string,
  settings: ApiSettings = {},
): Promise<DataInstall> {
  await ensureDataImages();
  const api = await startSelfhostApi({ ...defaults, ...settings });
  const s = await api.request('POST', '/api/auth/local/signup', {
    body: { email, password: 'correct horse battery' },
  });
  expect(s.status, s.text).toBe(201);
  const token = s.body.token as string;
  const orgId = s.body.org.id as string;
  const h = (body?: unknown) => ({
    token,
    headers: { 'x-org-id': orgId },
    ...(body === undefined ? {} : { body }),
  });
  const project = await api.request('POST', '/api/projects', h({ name: 'shop' }));
  expect(project.status, project.text).toBe(201);
  const node = await api.request(
    'POST',
    '/api/nodes',
    h({ name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' }),
  );
  expect(node.status, node.text).toBe(201);
  return { api, request: api.request, token, orgId, projectId: project.body.id, h };
}

/** What a run made on the engine, removed at the end whatever happened. */
export class DataCleanup {
  readonly volumes = new Set<string>();
  readonly networks = new Set<string>();
  readonly orgIds = new Set<string>();
  readonly labels: Record<string, string>;

  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }

  /** Notes a data service's volume and network (from any view of it). */
  saw(view: { volume?: unknown; network?: unknown }): void {
    if (typeof view.volume === 'string') this.volumes.add(view.volume);
    if (typeof view.network === 'string') this.networks.add(view.network);
  }

  async run(): Promise<void> {
    for (const orgId of this.orgIds) await removeContainersByLabel({ 'selfdevop.org': orgId });
    await removeContainersByLabel(this.labels);
    for (const v of this.volumes) await docker('volume', 'rm', '-f', v).catch(() => undefined);
    for (const n of this.networks) await docker('network', 'rm', n).catch(() => undefined);
  }
}

/** Creates a data service in `i`'s project and polls until it leaves `provisioning`. */
export async function createDataService(
  i: DataInstall,
  cleanup: DataCleanup,
  body: Record<string, unknown>,
): Promise<DataView> {
  const res = await i.request(
    'POST',
    '/api/data-services',
    i.h({ projectId: i.projectId, ...body }),
  );
  expect(res.status, res.text).toBe(202);
  cleanup.saw(res.body);
  return settleDataService(i, cleanup, res.body.id, (d) => d.status !== 'provisioning');
}

/** Polls a data service until `done` (bounded: 400 polls, 500 ms apart). */
export async function settleDataService(
  i: DataInstall,
  cleanup: DataCleanup,
  id: string,
  done: (d: DataView) => boolean,
): Promise<DataView> {
  for (let n = 0; n < 400; n++) {
    const r = await i.request('GET', `/api/data-services/${id}`, i.h());
    cleanup.saw(r.body);
    const view = (r.status === 200 ? r.body : { ...r.body, answered: r.status }) as DataView;
    if (done(view)) return view;
    await sleep(500);
  }
  throw new Error(`data service ${id} did not settle`);
}

/** Polls a data service's backups until the one `backupId` satisfies `done` (bounded: 200 polls). */
export async function waitForBackup<B extends { id: string }>(
  i: DataInstall,
  dataServiceId: string,
  backupId: string,
  done: (b: B) => boolean,
): Promise<B> {
  for (let n = 0; n < 200; n++) {
    const r = await i.request('GET', `/api/data-services/${dataServiceId}/backups`, i.h());
    expect(r.status, r.text).toBe(200);
    const found = (r.body.items as B[]).find((x) => x.id === backupId);
    if (found && done(found)) return found;
    await sleep(500);
  }
  throw new Error(`backup ${backupId} did not settle`);
}

/** Polls the audit trail until more than `after` events of `action` for `targetId` (bounded). */
export async function waitForAudit(
  i: DataInstall,
  action: string,
  targetId: string,
  after = 0,
): Promise<{ data: Record<string, unknown> }[]> {
  for (let n = 0; n < 200; n++) {
    const r = await i.request(
      'GET',
      `/api/audit-events?action=${action}&targetId=${targetId}&limit=200`,
      i.h(),
    );
    if (r.body.items?.length > after) return r.body.items;
    await sleep(500);
  }
  throw new Error(`no ${action} for ${targetId}`);
}

/** The value of `name` in a server container's environment (its generated password). */
export async function containerEnv(container: string, name: string): Promise<string> {
  const env = await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', container);
  const line = env.split('\n').find((l) => l.startsWith(`${name}=`));
  if (line === undefined) throw new Error(`${container} has no ${name}`);
  return line.slice(name.length + 1);
}

/** A data suite's file: one install, a run label and the clean-up, made before its tests. */
export interface DataSuite extends DataInstall {
  run: ReturnType<typeof testRun>;
  runtime: DockerRuntime;
  cleanup: DataCleanup;
  /**
   * Starts one more install (its own database, vault and object store) signed up as `email`;
   * its org's containers join the clean-up and it is closed with the suite's.
   */
  addInstall(email: string, settings?: ApiSettings): Promise<DataInstall>;
  create(body: Record<string, unknown>): Promise<DataView>;
  settle(id: string, done?: (d: DataView) => boolean): Promise<DataView>;
  /**
   * A one-off from a data image on `network`, running `sh` under `sh -ec` (`sh -c` with
   * `errexit: false`); the exit code and output are answered, not asserted.
   */
  client(
    image: string,
    network: string,
    env: Record<string, string>,
    sh: string,
    options?: { errexit?: boolean },
  ): Promise<{ exitCode: number | null; output: string }>;
}

/**
 * Registers the suite's beforeAll (an install signed up as `email`) and afterAll (close, then
 * clean up); the returned object is filled in before the first test runs. `settings` may be
 * a function when they depend on what `before` made (a Caddy's address, image tags); `after`
 * runs last, once the suite's containers are gone (so images they used can be untagged).
 */
export function useDataSuite(
  fileUrl: string,
  options: {
    email: string;
    settings?: ApiSettings | (() => ApiSettings);
    before?: () => Promise<void>;
    after?: () => Promise<void>;
  },
): DataSuite {
  const run = testRun(fileUrl);
  const runtime = new DockerRuntime();
  const cleanup = new DataCleanup(run.labels);
  const suite = { run, runtime, cleanup } as DataSuite;
  const more: DataInstall[] = [];
  suite.addInstall = async (email, settings) => {
    const i = await startDataInstall(email, settings);
    more.push(i);
    cleanup.orgIds.add(i.orgId);
    return i;
  };
  suite.create = (body) => createDataService(suite, cleanup, body);
  suite.settle = (id, done = (d) => d.status !== 'provisioning') =>
    settleDataService(suite, cleanup, id, done);
  suite.client = async (image, network, env, sh, { errexit = true } = {}) => {
    const r = await runtime.runOnce(
      dockerTarget,
      {
        name: run.name('client'),
        image,
        env,
        labels: run.labels,
        entrypoint: ['sh', errexit ? '-ec' : '-c', sh],
        restartPolicy: 'no',
        network,
      },
      60_000,
    );
    return { exitCode: r.exitCode, output: r.output.trim() };
  };
  beforeAll(async () => {
    await options.before?.();
    const { settings } = options;
    const resolved = typeof settings === 'function' ? settings() : settings;
    Object.assign(suite, await startDataInstall(options.email, resolved));
    cleanup.orgIds.add(suite.orgId);
  }, 900_000);
  afterAll(async () => {
    await suite.api?.close();
    for (const i of more) await i.api.close();
    await cleanup.run();
    await options.after?.();
  });
  return suite;
}

/**
 * A ready MariaDB data service (on a node row only: no container) with one completed manual
 * backup whose stored object is `object`, as the worker would leave it: for suites about
 * what happens to a backup after it is taken (export, import, transfers), with no worker.
 */
export async function seedCompletedBackup(
  api: Api,
  auth: { orgId: string; projectId: string },
  object: Uint8Array,
  name = 'orders',
  /** The data key `object` is encrypted under, and the dump's size, for a real encoded object. */
  coded: { dataKey?: string; rawBytes?: number } = {},
): Promise<{ dataServiceId: string; backupId: string }> {
  const node = aNode(auth.orgId);
  const ds = aDataService(auth.orgId, auth.projectId, node.id, {
    name,
    engine: 'mariadb',
    version: '10.11',
    status: 'ready',
    settings: {},
  });
  const backup = aDataServiceBackup(auth.orgId, ds.id, { status: 'completed' });
  const sealedDataKey = await api.system.vault.seal(
    coded.dataKey ?? randomBytes(32).toString('base64'),
    backupKeyContext(auth.orgId, backup.id),
  );
  const sha256 = createHash('sha256').update(object).digest('hex');
  const manifest: BackupManifest = {
    format: 2,
    backupId: backup.id,
    dataServiceId: ds.id,
    engine: 'mariadb',
    serverVersion: '10.11.6-MariaDB',
    tool: 'mariadb-dump --single-transaction',
    encoding: 'gzip+aes-256-gcm',
    sealedDataKey,
    objectKey: backup.objectKey,
    rawBytes: coded.rawBytes ?? object.length * 4,
    storedBytes: object.length,
    sha256,
    rawSha256: null,
    tables: { orders: 3 },
    keys: null,
    takenAt: new Date().toISOString(),
  };
  await api.system.api.store.withOrg(auth.orgId, async (r) => {
    await r.nodes.insert(node);
    await r.dataServices.insert(ds);
    await r.dataServiceBackups.insert({
      ...backup,
      sealedDataKey,
      manifest,
      storedBytes: object.length,
      rawBytes: manifest.rawBytes,
      sha256,
      finishedAt: new Date().toISOString(),
    });
  });
  await api.system.release.objects!.put(backup.objectKey, object);
  return { dataServiceId: ds.id, backupId: backup.id };
}

/**
 * `dump` encoded as a backup's object is (gzip, then AES-256-GCM under a fresh data key), for
 * seeding a completed backup a client can really download and decrypt.
 */
export async function encodedBackup(
  dump: Buffer,
): Promise<{ dump: Buffer; dataKey: string; object: Buffer }> {
  const dataKey = randomBytes(32).toString('base64');
  const encoded = new NodeBackupCodec().encode(
    (async function* () {
      yield dump;
    })(),
    dataKey,
  );
  const chunks: Buffer[] = [];
  for await (const c of encoded.output) chunks.push(Buffer.from(c));
  return { dump, dataKey, object: Buffer.concat(chunks) };
}
