/**
 * `npm run bench:api`: autocannon against an authenticated `GET /api/projects` (API key,
 * row-level security) and, in the same run, two references, each in its own child process
 * on loopback: a bare Hono hello-world (the HTTP ceiling), and the database floor — the
 * same query under the same tenant setting, sent by `pg` alone with as many concurrent
 * callers as autocannon has connections and a pool as large as the API's. Prints JSON
 * whose `goals` map says what was met; ratios are what compare across machines.
 *
 * Bounded: each run lasts BENCH_SECONDS (default 10) at 50 connections, loopback only,
 * after BENCH_WARMUP_REQUESTS (default 20,000) requests of the same load that are not
 * measured, so each of the three is compared hot (JIT, prepared statements, pooled
 * connections). The warm-up is a count, the same for all three, not a time: V8 optimises
 * a function after it has run so many times, not after so many seconds, and a warm-up of
 * 2 s on a loaded machine served a few thousand requests, so the API (whose path is long)
 * was measured partly unoptimised while the floor (short, and warm sooner) was not.
 *
 * Besides req/s, which follow whatever else the machine runs, it prints CPU per request:
 * user and system microseconds of the process under test (asked over IPC), and of the
 * PostgreSQL backends serving it (from /proc, when PostgreSQL runs on this host). Those
 * say where a request's cost is, whatever the load; the `loadAverage` says how loaded
 * the machine was. BENCH_PROFILE_DIR writes a CPU profile of the API's measured run alone.
 *
 * The fair split of the cores. The floor has no HTTP client; the API's comes from
 * autocannon, which costs about a third of what the API does per request. Unpinned on a
 * machine of two cores, autocannon takes its share of the cores from the API and its
 * PostgreSQL, so the ratio would stay under 0.6 even for an API that cost nothing — in
 * production the load comes from other machines. So by default the bench starts its own
 * PostgreSQL cluster (initdb into a temporary directory, a port from the OS) and runs the
 * system under test — the API process and its PostgreSQL backends, the floor's `pg` client
 * and its backends, bare Hono — on the same CPU set (BENCH_SUT_CPUS, default `0`), and the
 * load generator (this process, hence autocannon) on another (BENCH_LOAD_CPUS, default
 * `1`): each side of the ratio then has one core's worth for what it measures, and
 * autocannon's cost is outside it. Without `taskset`, PostgreSQL's `initdb` (BENCH_PG_BIN,
 * default /usr/lib/postgresql/15/bin) or two CPUs, or with BENCH_PIN=0, it runs unpinned on
 * the machine's PostgreSQL (TEST_DATABASE_ADMIN_URL) and says so loudly, in stderr and in
 * the JSON's `pinning`.
 *
 * The runtime. The server, the floor and bare Hono run with the V8 flags and malloc arenas
 * an install gives its API (the image's, with the stack's `api` service's NODE_OPTIONS:
 * bench/support/install-runtime.ts; the JSON's `runtime`), as bench:scale runs the worker's.
 * The p99 is mostly GC: with Node's default young generation on this host the server paused
 * 11–20 ms per scavenge to copy what 50 requests in flight held; with the API's 8 MB
 * semi-space, about 2 ms (ARCHITECTURE.md, "The tail: the young generation").
 */
import autocannon from 'autocannon';
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { chown, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/ports.ts';
import { installRuntime } from './support/install-runtime.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const warmupRequests = Number(process.env.BENCH_WARMUP_REQUESTS ?? 20_000);
const connections = 50;
const self = fileURLToPath(import.meta.url);

type Ready = { port: number; token?: string; databaseUrl?: string; orgId?: string };

/** CPU lists for `taskset -c`: the system under test's, and the load generator's. */
type Pinning = { sut: string; load: string };

const pgBin = process.env.BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Why the bench cannot pin, or null when it can. */
function whyUnpinned(): string | null {
  if (process.env.BENCH_PIN === '0') return 'BENCH_PIN=0';
  if (os.availableParallelism() < 2) return 'fewer than two CPUs';
  if (!existsSync(path.join(pgBin, 'initdb'))) return `no initdb in ${pgBin} (BENCH_PG_BIN)`;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return 'no taskset';
  }
  return null;
}

/**
 * A PostgreSQL cluster of the bench's own, its postmaster (hence every backend it forks)
 * pinned to `cpus`: the machine's shared PostgreSQL cannot be pinned without disturbing
 * everyone else's. As root, PostgreSQL must run as another user: `postgres`, via runuser.
 * Reads only, so durability settings do not matter and stay PostgreSQL's defaults.
 */
async function startCluster(cpus: string): Promise<{ adminUrl: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-bench-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    await chown(dir, uid, gid);
  }
  const as = (bin: string, args: string[]): [string, string[]] =>
    asRoot
      ? ['runuser', ['-u', 'postgres', '--', path.join(pgBin, bin), ...args]]
      : [path.join(pgBin, bin), args];
  execFileSync(
    ...as('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']),
    {
      stdio: 'ignore',
    },
  );
  const port = await freePort();
  const [cmd, args] = as('pg_ctl', [
    '-D',
    data,
    '-l',
    path.join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`,
    'start',
  ]);
  // pg_ctl's postmaster keeps taskset's affinity, and each backend the postmaster's.
  execFileSync('taskset', ['-c', cpus, cmd, ...args], { stdio: 'ignore' });
  // Synchronous to the end, so a second caller (the interrupt's, then run's finally) finds
  // it done: an await here let the process exit on run's error with the directory left.
  let stopped = false;
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      execFileSync(...as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']), {
        stdio: 'ignore',
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The system under test runs as an install runs the API (its V8 flags and malloc arenas);
// this process, the load generator, keeps Node's defaults.
const runtime = installRuntime('api');

/**
 * A child running this file with `args`, with the install's runtime, pinned to the system
 * under test's CPUs if any. The floor and bare Hono run the same way as the API, so the
 * ratios compare code, not runtime settings.
 */
function forkChild(args: string[], pinning: Pinning | null, env: NodeJS.ProcessEnv): ChildProcess {
  const execArgv = [...process.execArgv, ...runtime.nodeFlags];
  return fork(self, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...runtime.env, ...env },
    // taskset sets the affinity and execs node, which inherits the IPC channel's descriptor.
    ...(pinning
      ? { execPath: 'taskset', execArgv: ['-c', pinning.sut, process.execPath, ...execArgv] }
      : { execArgv }),
  });
}

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

/** CPU time per request, in microseconds: user, system and their sum. */
type Cpu = { user: number; system: number; total: number };

/**
 * cpu: of the process under test; db: of the PostgreSQL backends serving it (null when
 * they cannot be read: PostgreSQL on another host, or no /proc).
 */
type Latency = {
  reqPerSec: number;
  p99Ms: number;
  p50Ms: number;
  cpu: Cpu;
  db: Cpu | null;
  /** Of the HTTP client (autocannon, in this process); none for the floor, which has none. */
  client?: Cpu;
};

const cpuPerRequest = (
  a: { user: number; system: number },
  b: { user: number; system: number },
  requests: number,
): Cpu => {
  const per = (n: number) => Math.round(n / requests);
  return {
    user: per(b.user - a.user),
    system: per(b.system - a.system),
    total: per(b.user - a.user + b.system - a.system),
  };
};

/** CPU time so far, in microseconds, of each PostgreSQL backend by pid. */
type BackendsCpu = Map<number, { user: number; system: number }>;

/**
 * The CPU time, in microseconds, of the client backends connected to the bench's database:
 * what PostgreSQL spends on the requests, read from /proc/<pid>/stat (utime and stime, in
 * clock ticks). Null when a backend's stat cannot be read (PostgreSQL elsewhere).
 */
async function databaseCpu(databaseUrl: string): Promise<BackendsCpu | null> {
  const { readFile } = await import('node:fs/promises');
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>(
      `select pid from pg_stat_activity
        where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()`,
    );
    const microsPerTick = 1e6 / clockTicks;
    const backends: BackendsCpu = new Map();
    for (const { pid } of rows) {
      let stat: string;
      try {
        stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      } catch {
        return null;
      }
      // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      backends.set(pid, {
        user: Number(fields[11]) * microsPerTick,
        system: Number(fields[12]) * microsPerTick,
      });
    }
    return backends;
  } finally {
    await client.end();
  }
}

/**
 * Backends' CPU per request between two readings, backend by backend: one that connected in
 * between counts from zero. Summing all backends at each end instead went negative when a
 * backend left in between (a pool shrinking, pg-boss reconnecting) and took its time with it.
 */
function databaseCpuPerRequest(a: BackendsCpu, b: BackendsCpu, requests: number): Cpu {
  let user = 0;
  let system = 0;
  for (const [pid, end] of b) {
    const start = a.get(pid) ?? { user: 0, system: 0 };
    user += end.user - start.user;
    system += end.system - start.system;
  }
  return cpuPerRequest({ user: 0, system: 0 }, { user, system }, requests);
}

// The kernel's clock tick, in which /proc reports CPU time (100 on Linux almost always).
const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

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
  // Warm-up: the same count of reads as the API gets requests, spread over the callers.
  let warmupLeft = warmupRequests;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (warmupLeft-- > 0) await read();
    }),
  );
  const samples: number[] = [];
  const end = performance.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const db0 = await databaseCpu(databaseUrl);
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await read();
        samples.push(performance.now() - t0);
      }
    }),
  );
  const cpu1 = process.cpuUsage();
  const db1 = await databaseCpu(databaseUrl);
  await pool.end();
  samples.sort((a, b) => a - b);
  const at = (p: number) =>
    Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 100) / 100;
  return {
    reqPerSec: samples.length / seconds,
    p99Ms: at(0.99),
    p50Ms: at(0.5),
    cpu: cpuPerRequest(cpu0, cpu1, samples.length),
    db: db0 && db1 ? databaseCpuPerRequest(db0, db1, samples.length) : null,
  };
}

function startFloor(databaseUrl: string, orgId: string, pinning: Pinning | null): Promise<Latency> {
  const child = forkChild(['--floor', databaseUrl, orgId], pinning, {});
  return new Promise((resolve, reject) => {
    child.once('message', (result) => resolve(result as Latency));
    child.once('exit', (code) => reject(new Error(`floor exited with ${code}`)));
  });
}

function startServer(
  kind: 'bare' | 'authed',
  pinning: Pinning | null,
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = forkChild(['--serve', kind], pinning, env);
  return new Promise((resolve, reject) => {
    child.once('message', (ready) => resolve({ child, ready: ready as Ready }));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

/** Asks the server something over IPC and waits for its answer. */
function ask<T>(child: ChildProcess, what: 'cpu' | 'profile-start' | 'profile-stop'): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(what);
  });
}

/** The server's CPU time so far, asked over IPC: what it costs, whatever else the machine runs. */
const serverCpu = (child: ChildProcess) => ask<{ user: number; system: number }>(child, 'cpu');

async function load(
  kind: 'bare' | 'authed',
  child: ChildProcess,
  url: string,
  headers: Record<string, string>,
  databaseUrl?: string,
): Promise<Latency> {
  if (warmupRequests > 0) {
    const warm = await autocannon({ url, connections, amount: warmupRequests, headers });
    if (warm.non2xx > 0 || warm.errors > 0)
      throw new Error(`${url}: ${warm.non2xx} non-2xx and ${warm.errors} errors while warming up`);
  }
  const profiling = Boolean(process.env.BENCH_PROFILE_DIR);
  if (profiling) await ask(child, 'profile-start');
  const cpu0 = await serverCpu(child);
  const db0 = databaseUrl ? await databaseCpu(databaseUrl) : null;
  const client0 = process.cpuUsage();
  const result = await autocannon({ url, connections, duration: seconds, headers });
  const client1 = process.cpuUsage();
  const cpu1 = await serverCpu(child);
  const db1 = databaseUrl ? await databaseCpu(databaseUrl) : null;
  if (profiling) {
    const file = path.join(process.env.BENCH_PROFILE_DIR!, `api-${kind}-${Date.now()}.cpuprofile`);
    const profile = await ask<object>(child, 'profile-stop');
    await writeFile(file, JSON.stringify(profile));
    process.stderr.write(`CPU profile of the measured ${kind} run: ${file}\n`);
  }
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx and ${result.errors} errors under load`);
  }
  const requests = result.requests.total;
  return {
    reqPerSec: result.requests.average,
    p99Ms: result.latency.p99,
    p50Ms: result.latency.p50,
    cpu: cpuPerRequest(cpu0, cpu1, requests),
    db: db0 && db1 ? databaseCpuPerRequest(db0, db1, requests) : null,
    client: cpuPerRequest(client0, client1, requests),
  };
}

async function stop(child: ChildProcess) {
  const exited = new Promise((r) => child.once('exit', r));
  child.disconnect();
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  await exited;
}

async function main() {
  const unpinned = whyUnpinned();
  const pinning: Pinning | null = unpinned
    ? null
    : { sut: process.env.BENCH_SUT_CPUS ?? '0', load: process.env.BENCH_LOAD_CPUS ?? '1' };
  if (pinning) {
    // This process drives autocannon: on the load generator's CPUs, every thread.
    execFileSync('taskset', ['-a', '-p', '-c', pinning.load, String(process.pid)], {
      stdio: 'ignore',
    });
  } else {
    process.stderr.write(
      `\n*** bench:api UNPINNED (${unpinned}): autocannon shares the cores with the API and ` +
        `PostgreSQL while the floor has no HTTP client, so authedVsDbFloorRatio understates ` +
        `the API. ***\n\n`,
    );
  }
  const cluster = pinning ? await startCluster(pinning.sut) : null;
  // Interrupted, the cluster would outlive the bench: stop it, then leave as signalled.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void cluster?.stop().finally(() => process.exit(130)));
  try {
    await run(pinning, unpinned, cluster ? { TEST_DATABASE_ADMIN_URL: cluster.adminUrl } : {});
  } finally {
    await cluster?.stop();
  }
}

async function run(pinning: Pinning | null, unpinned: string | null, env: NodeJS.ProcessEnv) {
  const bare = await startServer('bare', pinning, env);
  const bareResult = await load('bare', bare.child, `http://127.0.0.1:${bare.ready.port}/`, {});
  await stop(bare.child);

  const authed = await startServer('authed', pinning, env);
  const floor = await startFloor(authed.ready.databaseUrl!, authed.ready.orgId!, pinning);
  const authedPath = `/api/projects?limit=${pageLimit}`;
  const authedResult = await load(
    'authed',
    authed.child,
    `http://127.0.0.1:${authed.ready.port}${authedPath}`,
    { authorization: `Bearer ${authed.ready.token}` },
    authed.ready.databaseUrl,
  );
  await stop(authed.child);

  const round = (n: number) => Math.round(n * 1000) / 1000;
  const floorRatio = round(authedResult.reqPerSec / floor.reqPerSec);
  const report = {
    bench: 'api',
    connections,
    seconds,
    warmupRequests,
    dbPoolMax,
    // Where each side ran: the system under test (server or floor, and PostgreSQL) on `sut`,
    // autocannon on `load`; or why not.
    pinning: pinning
      ? { ...pinning, postgres: 'own cluster, pinned with the system under test' }
      : { unpinned, postgres: "the machine's, unpinned" },
    // The install's API runtime (selfhost/), given to the server, the floor and bare Hono.
    runtime,
    authedPath: `GET ${authedPath} (API key, RLS, ${pageLimit} rows)`,
    authedReqPerSec: Math.round(authedResult.reqPerSec),
    authedP50Ms: authedResult.p50Ms,
    authedP99Ms: authedResult.p99Ms,
    authedServerCpuUsPerReq: authedResult.cpu,
    authedDbCpuUsPerReq: authedResult.db,
    // Unpinned, the HTTP client shares the machine's cores with the API and PostgreSQL (the
    // floor has no HTTP client); pinned, it runs on cores of its own.
    authedClientCpuUsPerReq: authedResult.client,
    floorPath:
      "pg alone: set_config(app.org_id) and the same page query in the implicit transaction one Sync ends (the store's wire shape), one round trip",
    floorReqPerSec: Math.round(floor.reqPerSec),
    floorP50Ms: floor.p50Ms,
    floorP99Ms: floor.p99Ms,
    floorCpuUsPerReq: floor.cpu,
    floorDbCpuUsPerReq: floor.db,
    bareReqPerSec: Math.round(bareResult.reqPerSec),
    bareP99Ms: bareResult.p99Ms,
    bareServerCpuUsPerReq: bareResult.cpu,
    // What the API's process spends beyond the driver's work (the floor's process) and
    // Node's HTTP serving (bare Hono): routing, auth, the store, logging, metrics, JSON.
    authedOwnCpuUsPerReq: authedResult.cpu.total - floor.cpu.total - bareResult.cpu.total,
    // The machine's load while this ran: on a shared machine req/s follow it, CPU per request less so.
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    authedVsBareRatio: round(authedResult.reqPerSec / bareResult.reqPerSec),
    // The floor's CPU per read over the API's per request, each with its PostgreSQL backends:
    // what authedVsDbFloorRatio would be with the system under test's CPUs to itself (other
    // engineers' processes share them on a loaded machine and move req/s, not this).
    authedVsDbFloorCpuRatio:
      authedResult.db && floor.db
        ? round(
            (floor.cpu.total + floor.db.total) / (authedResult.cpu.total + authedResult.db.total),
          )
        : null,
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
  const { Session } = await import('node:inspector/promises');
  const inspector = new Session();
  process.on('message', (m) => {
    if (m === 'cpu') process.send!(process.cpuUsage());
    else if (m === 'profile-start') {
      inspector.connect();
      void inspector
        .post('Profiler.enable')
        .then(() => inspector.post('Profiler.start'))
        .then(() => process.send!('started'));
    } else if (m === 'profile-stop') {
      void inspector.post('Profiler.stop').then(({ profile }) => {
        inspector.disconnect();
        process.send!(profile);
      });
    }
  });
  if (kind === 'bare') process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
