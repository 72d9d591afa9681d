/**
 * `npm run bench:api`: autocannon against an authenticated `GET /api/projects` (API key,
 * row-level security) and, in the same run, two references, each in its own child process
 * on loopback: a bare Hono hello-world (the HTTP ceiling), and the database floor — the
 * same query under the same tenant setting, sent by `pg` alone with as many concurrent
 * callers as autocannon has connections and a pool as large as the API's. Prints JSON
 * whose `goals` map says what was met; ratios are what compare across machines.
 *
 * Bounded: each run lasts BENCH_SECONDS (default 10) at 50 connections, loopback only,
 * after BENCH_WARMUP_SECONDS (default 2) of the same load that is not measured, so each of
 * the three is compared hot (JIT, prepared statements, pooled connections).
 */
import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const warmupSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const connections = 50;
const self = fileURLToPath(import.meta.url);

type Ready = { port: number; token?: string; databaseUrl?: string; orgId?: string };

const dbPoolMax = 10;
const pageLimit = 20;

async function serveBare(): Promise<Ready> {
  const { Hono } = await import('hono');
  const { serve } = await import('@hono/node-server');
  const app = new Hono();
  app.get('/', (c) => c.json({ hello: 'world' }));
  return new Promise((resolve) => {
    serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) =>
      resolve({ port: info.port }),
    );
  });
}

async function serveAuthed(): Promise<Ready> {
  const { randomBytes } = await import('node:crypto');
  const { mkdtemp } = await import('node:fs/promises');
  const path = await import('node:path');
  const { createTestDatabase } = await import('../test/support/db.ts');
  const { migrate } = await import('../adapters/db/migrator.ts');
  const { ensureKeyFile } = await import('../adapters/vault/aes-file.ts');
  const { fromSelfhostSettings } = await import('../test/support/selfhost-config.ts');
  const { serveApi } = await import('../functions/selfhost/server.ts');
  const db = await createTestDatabase('bench');
  process.on('disconnect', () => void db.drop().finally(() => process.exit(0)));
  await migrate(db.url);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-bench-'));
  const keyFile = path.join(dir, 'key');
  await ensureKeyFile(keyFile);
  const system = await fromSelfhostSettings({
    databaseUrl: db.url,
    jwtSecret: randomBytes(32).toString('base64url'),
    encryptionKeyFile: keyFile,
    signupMode: 'open',
    edgeDomain: 'localhost',
    caddyAdminUrl: 'http://127.0.0.1:1',
    maxBodyBytes: 256 * 1024,
    dbPoolMax,
    version: 'bench',
    bcryptCost: 4,
    // Serialise every log line as production does, but do not time the terminal.
    logDestination: { write: () => undefined },
  });
  const served = await serveApi(system.api, { host: '127.0.0.1', port: 0, trustProxy: false });
  const base = `http://127.0.0.1:${served.port}`;
  const post = async (p: string, body: unknown, token?: string) => {
    const res = await fetch(base + p, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { token: string; key: string; org: { id: string } };
  };
  const s = await post('/api/auth/local/signup', {
    email: 'bench@example.com',
    password: 'correct horse battery',
  });
  const key = await post(
    `/api/orgs/${s.org.id}/api-keys`,
    { name: 'bench', role: 'viewer' },
    s.token,
  );
  for (let i = 0; i < 20; i++) await post('/api/projects', { name: `project-${i}` }, s.token);
  return { port: served.port, token: key.key, databaseUrl: db.url, orgId: s.org.id };
}

/** cpuUsPerReq: CPU time (user + system) of the process under test per request. */
type Latency = { reqPerSec: number; p99Ms: number; p50Ms: number; cpuUsPerReq: number };

const cpuMicros = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/**
 * The floor: what the API's read costs the database and the driver alone. Each of
 * `connections` callers loops on one pooled connection sending the page query the store
 * sends for `GET /api/projects?limit=20` under the same tenant setting, in the very wire
 * shape the store uses (`readWithSettings`: the setting and the query in the implicit
 * transaction one Sync ends, one round trip). Issue 11 named BEGIN, setting, query, COMMIT;
 * once the store sent less than that, a floor still sending four statements would flatter
 * the ratio, so the floor follows the store.
 */
async function measureFloor(databaseUrl: string, orgId: string): Promise<Latency> {
  const { default: pg } = await import('pg');
  const { pageSql, eq } = await import('../adapters/store/postgres/sql.ts');
  const { projectsTable } = await import('../adapters/store/postgres/projects.ts');
  // The API's own type parsers, so both parse the same rows the same way.
  const { types, readWithSettings } = await import('../adapters/db/postgres.ts');
  const q = pageSql(projectsTable, [eq('org_id', orgId)], { limit: pageLimit });
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: dbPoolMax,
    pipeline: true,
    types,
    onConnect: (c) => c.query('set role selfdevop_app').then(() => undefined),
  });
  const read = async (): Promise<number> => {
    const client = await pool.connect();
    try {
      const result = await readWithSettings(client, [['app.org_id', orgId]], q.text, q.values);
      return result.rows.length;
    } finally {
      client.release();
    }
  };
  if ((await read()) === 0) throw new Error('floor: the tenant sees none of its projects');
  const run = async (forSeconds: number, samples: number[] | null) => {
    const end = performance.now() + forSeconds * 1000;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now();
          await read();
          samples?.push(performance.now() - t0);
        }
      }),
    );
  };
  await run(warmupSeconds, null);
  const samples: number[] = [];
  const cpu0 = cpuMicros();
  await run(seconds, samples);
  const cpuUs = cpuMicros() - cpu0;
  await pool.end();
  samples.sort((a, b) => a - b);
  const at = (p: number) =>
    Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 100) / 100;
  return {
    reqPerSec: samples.length / seconds,
    p99Ms: at(0.99),
    p50Ms: at(0.5),
    cpuUsPerReq: Math.round(cpuUs / samples.length),
  };
}

function startFloor(databaseUrl: string, orgId: string): Promise<Latency> {
  const child = fork(self, ['--floor', databaseUrl, orgId], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (result) => resolve(result as Latency));
    child.once('exit', (code) => reject(new Error(`floor exited with ${code}`)));
  });
}

function startServer(kind: 'bare' | 'authed'): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(self, ['--serve', kind], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: process.env.BENCH_PROFILE_DIR
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
      : [],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (ready) => resolve({ child, ready: ready as Ready }));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

/** The server's CPU time so far, asked over IPC: what it costs, whatever else the machine runs. */
function serverCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve((m as { cpuMicros: number }).cpuMicros));
    child.send('cpu');
  });
}

async function load(child: ChildProcess, url: string, headers: Record<string, string>) {
  if (warmupSeconds > 0) await autocannon({ url, connections, duration: warmupSeconds, headers });
  const cpu0 = await serverCpu(child);
  const result = await autocannon({ url, connections, duration: seconds, headers });
  const cpuUs = (await serverCpu(child)) - cpu0;
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx and ${result.errors} errors under load`);
  }
  return {
    reqPerSec: result.requests.average,
    p99Ms: result.latency.p99,
    p50Ms: result.latency.p50,
    cpuUsPerReq: Math.round(cpuUs / result.requests.total),
  };
}

async function stop(child: ChildProcess) {
  const exited = new Promise((r) => child.once('exit', r));
  child.disconnect();
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  await exited;
}

async function main() {
  const bare = await startServer('bare');
  const bareResult = await load(bare.child, `http://127.0.0.1:${bare.ready.port}/`, {});
  await stop(bare.child);

  const authed = await startServer('authed');
  const floor = await startFloor(authed.ready.databaseUrl!, authed.ready.orgId!);
  const path = `/api/projects?limit=${pageLimit}`;
  const authedResult = await load(authed.child, `http://127.0.0.1:${authed.ready.port}${path}`, {
    authorization: `Bearer ${authed.ready.token}`,
  });
  await stop(authed.child);

  const round = (n: number) => Math.round(n * 1000) / 1000;
  const floorRatio = round(authedResult.reqPerSec / floor.reqPerSec);
  const report = {
    bench: 'api',
    connections,
    seconds,
    warmupSeconds,
    dbPoolMax,
    authedPath: `GET ${path} (API key, RLS, ${pageLimit} rows)`,
    authedReqPerSec: Math.round(authedResult.reqPerSec),
    authedP50Ms: authedResult.p50Ms,
    authedP99Ms: authedResult.p99Ms,
    authedServerCpuUsPerReq: authedResult.cpuUsPerReq,
    floorPath:
      "pg alone: set_config(app.org_id) and the same page query in the implicit transaction one Sync ends (the store's wire shape), one round trip",
    floorReqPerSec: Math.round(floor.reqPerSec),
    floorP50Ms: floor.p50Ms,
    floorP99Ms: floor.p99Ms,
    floorCpuUsPerReq: floor.cpuUsPerReq,
    bareReqPerSec: Math.round(bareResult.reqPerSec),
    bareP99Ms: bareResult.p99Ms,
    bareServerCpuUsPerReq: bareResult.cpuUsPerReq,
    // The machine's load while this ran: on a shared machine req/s follow it, CPU per request less so.
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    authedVsBareRatio: round(authedResult.reqPerSec / bareResult.reqPerSec),
    goals: {
      authedVsDbFloorRatio: { goal: '>= 0.6', got: floorRatio, met: floorRatio >= 0.6 },
      authedP99Ms: { goal: '<= 25', got: authedResult.p99Ms, met: authedResult.p99Ms <= 25 },
    },
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

if (process.argv[2] === '--floor') {
  process.send!(await measureFloor(process.argv[3]!, process.argv[4]!));
  process.disconnect();
} else if (process.argv[2] === '--serve') {
  const kind = process.argv[3];
  const ready = kind === 'bare' ? await serveBare() : await serveAuthed();
  process.send!(ready);
  process.on('message', (m) => {
    if (m === 'cpu') process.send!({ cpuMicros: cpuMicros() });
  });
  if (kind === 'bare') process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
