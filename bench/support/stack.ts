/**
 * The whole self-hosted deploy path for a benchmark: a fresh database, a private Caddy,
 * the control plane with its workers (in this process, so the bench's clock is the
 * engine's clock), one Docker node on the local socket, and an API client. Everything is
 * on loopback; close() removes every container of the bench's org, Caddy and the database.
 */
import http from 'node:http';
import { defaultPgBossConfig, type PgBossConfig } from '../../adapters/queue/pg-boss.ts';
import { toPgBossDb } from '../../adapters/db/postgres.ts';
import type { SelfhostTestSettings } from '../../test/support/selfhost-config.ts';
import { startSelfhostApi } from '../../test/support/api.ts';
import { startCaddy, type TestCaddy } from '../../test/support/caddy.ts';
import { createTestDatabase } from '../../test/support/db.ts';
import { ensureTestImages, removeContainersByLabel } from '../../test/support/docker.ts';
import type { Requester } from '../../test/support/http.ts';

export const dockerHost = 'unix:///var/run/docker.sock';

/** What a step row and a release look like on the wire (GET /api/releases/{id}). */
export interface StepView {
  name: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
}
export interface ReleaseWire {
  id: string;
  status: string;
  image: string;
  error: string | null;
  previousReleaseId: string | null;
  upstream: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: StepView[];
}

/** One pg-boss job of the release-steps queue, with its timestamps (ms since the epoch). */
export interface StepJob {
  releaseId: string;
  status: string;
  createdOn: number;
  startedOn: number | null;
  completedOn: number | null;
  retryCount: number;
}

type Api = Awaited<ReturnType<typeof startSelfhostApi>>;

export interface Stack {
  caddy: TestCaddy;
  orgId: string;
  projectId: string;
  /** The queue settings the running control plane uses. */
  queue: Partial<PgBossConfig>;
  req: Requester;
  token: () => string;
  /** Stops the control plane and starts it again on the same database and Caddy. */
  restart(queue: Partial<PgBossConfig>): Promise<void>;
  createService(name: string, body: Record<string, unknown>): Promise<{ id: string; host: string }>;
  /** POSTs a release; t0 is taken just before the request, tResp when the 202 came back. */
  deploy(serviceId: string, image: string): Promise<{ id: string; t0: number; tResp: number }>;
  getRelease(id: string): Promise<ReleaseWire>;
  /** Polls until the release is completed, failed or rolled back; throws after deadlineMs. */
  settle(id: string, deadlineMs?: number, intervalMs?: number): Promise<ReleaseWire>;
  logs(id: string): Promise<{ at: string; line: string }[]>;
  /** The release-steps jobs of these releases, read from pg-boss's table. */
  stepJobs(releaseIds: string[]): Promise<StepJob[]>;
  /** GET through Caddy's HTTP port with a Host header, on a keep-alive agent. */
  viaCaddy(
    host: string,
    path: string,
    timeoutMs?: number,
  ): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

const discard = { write: () => undefined };

/** Races a promise against a timer, so a stuck shutdown cannot hold the bench forever. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      process.stderr.write(`bench: ${what} did not finish within ${ms} ms; moving on\n`);
      resolve(undefined);
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Boots the stack. `queue` goes to pg-boss (e.g. pollingIntervalSeconds); unset fields take
 * the shipped defaults, not the test harness's shorter ones.
 */
export async function startStack(options: {
  queue: Partial<PgBossConfig>;
  release?: SelfhostTestSettings['release'];
}): Promise<Stack> {
  const cleanups: (() => Promise<unknown>)[] = [];
  let orgId = '';
  // One clean-up however many callers (the watchdog, a signal, the normal end) ask for it.
  let closing: Promise<void> | null = null;
  const closeAll = () =>
    (closing ??= (async () => {
      for (const c of cleanups.splice(0).reverse()) {
        await within(
          c().catch((e: unknown) =>
            process.stderr.write(`bench: clean-up step failed: ${String(e)}\n`),
          ),
          30_000,
          'clean-up step',
        );
      }
    })());
  try {
    await ensureTestImages();
    const db = await createTestDatabase('bench_deploy');
    cleanups.push(() => db.drop());
    const caddy = await startCaddy();
    cleanups.push(() => caddy.stop());
    cleanups.push(async () => {
      if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    });
    const boot = (queue: Partial<PgBossConfig>) =>
      startSelfhostApi({
        databaseUrl: db.url,
        workers: true,
        caddyAdminUrl: caddy.adminUrl,
        caddyServer: caddy.serverName,
        // Production's pool size and log level; lines are serialised, then dropped.
        dbPoolMax: 10,
        logDestination: discard,
        queue: { retryDelaySeconds: defaultPgBossConfig.retryDelaySeconds, ...queue },
        release: options.release ?? {},
      });
    let api: Api = await boot(options.queue);
    cleanups.push(() => within(api.close(), 30_000, 'control plane shutdown'));
    const jobsDb = toPgBossDb(db.url, { max: 1 });
    cleanups.push(() => jobsDb.close());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    cleanups.push(async () => agent.destroy());

    const email = 'bench@example.com';
    const password = 'correct horse battery';
    const signup = await api.request('POST', '/api/auth/local/signup', {
      body: { email, password },
    });
    if (signup.status !== 201) throw new Error(`signup answered ${signup.status}: ${signup.text}`);
    let token = signup.body.token as string;
    orgId = signup.body.org.id as string;
    const req: Requester = (method, path, o = {}) => api.request(method, path, { token, ...o });
    const project = await req('POST', '/api/projects', { body: { name: 'bench' } });
    if (project.status !== 201)
      throw new Error(`project answered ${project.status}: ${project.text}`);
    const node = await req('POST', '/api/nodes', {
      body: { name: 'local', dockerHost, address: '127.0.0.1' },
    });
    if (node.status !== 201) throw new Error(`node answered ${node.status}: ${node.text}`);

    const stack: Stack = {
      caddy,
      orgId,
      projectId: project.body.id as string,
      queue: options.queue,
      req,
      token: () => token,
      async restart(queue) {
        await within(api.close(), 30_000, 'control plane shutdown');
        api = await boot(queue);
        stack.queue = queue;
        const login = await api.request('POST', '/api/auth/local/login', {
          body: { email, password },
        });
        if (login.status !== 200) throw new Error(`login answered ${login.status}: ${login.text}`);
        token = login.body.token as string;
      },
      async createService(name, body) {
        const res = await req('POST', '/api/services', {
          body: { projectId: stack.projectId, name, ...body },
        });
        if (res.status !== 201)
          throw new Error(`service ${name} answered ${res.status}: ${res.text}`);
        return { id: res.body.id as string, host: res.body.hosts[0].host as string };
      },
      async deploy(serviceId, image) {
        const t0 = Date.now();
        const res = await req('POST', '/api/releases', { body: { serviceId, image } });
        const tResp = Date.now();
        if (res.status !== 202)
          throw new Error(`deploy of ${image} answered ${res.status}: ${res.text}`);
        return { id: res.body.id as string, t0, tResp };
      },
      async getRelease(id) {
        const res = await req('GET', `/api/releases/${id}`);
        if (res.status !== 200)
          throw new Error(`release ${id} answered ${res.status}: ${res.text}`);
        return res.body as ReleaseWire;
      },
      async settle(id, deadlineMs = 60_000, intervalMs = 50) {
        const end = Date.now() + deadlineMs;
        for (;;) {
          const r = await stack.getRelease(id);
          if (['completed', 'failed', 'rolled_back'].includes(r.status)) return r;
          if (Date.now() > end)
            throw new Error(`release ${id} still ${r.status} after ${deadlineMs} ms`);
          await new Promise((x) => setTimeout(x, intervalMs));
        }
      },
      async logs(id) {
        const res = await req('GET', `/api/releases/${id}/logs`);
        if (res.status !== 200)
          throw new Error(`logs of ${id} answered ${res.status}: ${res.text}`);
        return res.body.items as { at: string; line: string }[];
      },
      async stepJobs(releaseIds) {
        const { rows } = await jobsDb.executeSql(
          `select data->'payload'->>'releaseId' as release_id, data->'payload'->>'status' as status,
                  created_on, started_on, completed_on, retry_count
             from pgboss.job
            where name = 'release-steps' and data->'payload'->>'releaseId' = any($1::text[])
            order by created_on`,
          [releaseIds],
        );
        const ms = (v: unknown) =>
          v instanceof Date ? v.getTime() : v === null ? null : new Date(String(v)).getTime();
        return (rows as Record<string, unknown>[]).map((r) => ({
          releaseId: String(r.release_id),
          status: String(r.status),
          createdOn: ms(r.created_on)!,
          startedOn: ms(r.started_on),
          completedOn: ms(r.completed_on),
          retryCount: Number(r.retry_count),
        }));
      },
      viaCaddy(host, path, timeoutMs = 2000) {
        return new Promise((resolve, reject) => {
          const r = http.get(
            {
              host: '127.0.0.1',
              port: caddy.httpPort,
              path,
              headers: { host },
              agent,
              timeout: timeoutMs,
            },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
              res.on('error', reject);
            },
          );
          r.on('timeout', () => r.destroy(new Error(`GET ${host}${path} via Caddy timed out`)));
          r.on('error', reject);
        });
      },
      close: closeAll,
    };
    return stack;
  } catch (e) {
    await closeAll();
    throw e;
  }
}
