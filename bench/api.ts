/**
 * `npm run bench:api`: autocannon against an authenticated `GET /api/projects` (API key,
 * one RLS transaction per request) and, in the same run, against a bare Hono hello-world,
 * each served by its own child process on loopback. Prints JSON; the ratio is what
 * compares across machines.
 *
 * Bounded: each run lasts BENCH_SECONDS (default 10) at 50 connections, loopback only.
 */
import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = 50;
const self = fileURLToPath(import.meta.url);

type Ready = { port: number; token?: string; close?: never };

async function serveBare(): Promise<Ready> {
  const { Hono } = await import('hono');
  const { serve } = await import('@hono/node-server');
  const app = new Hono();
  app.get('/', (c) => c.json({ hello: 'world' }));
  return new Promise((resolve) => {
    serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve({ port: info.port }));
  });
}

async function serveAuthed(): Promise<Ready> {
  const { randomBytes } = await import('node:crypto');
  const { mkdtemp } = await import('node:fs/promises');
  const os = await import('node:os');
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
    dbPoolMax: 10,
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
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { token: string; key: string; org: { id: string } };
  };
  const s = await post('/api/auth/local/signup', { email: 'bench@example.com', password: 'correct horse battery' });
  const key = await post(`/api/orgs/${s.org.id}/api-keys`, { name: 'bench', role: 'viewer' }, s.token);
  for (let i = 0; i < 20; i++) await post('/api/projects', { name: `project-${i}` }, s.token);
  return { port: served.port, token: key.key };
}

function startServer(kind: 'bare' | 'authed'): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(self, ['--serve', kind], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (ready) => resolve({ child, ready: ready as Ready }));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

async function load(url: string, headers: Record<string, string>) {
  const result = await autocannon({ url, connections, duration: seconds, headers });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx and ${result.errors} errors under load`);
  }
  return { reqPerSec: result.requests.average, p99Ms: result.latency.p99, p50Ms: result.latency.p50 };
}

async function stop(child: ChildProcess) {
  const exited = new Promise((r) => child.once('exit', r));
  child.disconnect();
  setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  await exited;
}

async function main() {
  const bare = await startServer('bare');
  const bareResult = await load(`http://127.0.0.1:${bare.ready.port}/`, {});
  await stop(bare.child);

  const authed = await startServer('authed');
  const path = '/api/projects?limit=20';
  const authedResult = await load(`http://127.0.0.1:${authed.ready.port}${path}`, {
    authorization: `Bearer ${authed.ready.token}`,
  });
  await stop(authed.child);

  const report = {
    bench: 'api',
    connections,
    seconds,
    authedPath: `GET ${path} (API key, RLS transaction, 20 rows)`,
    authedReqPerSec: Math.round(authedResult.reqPerSec),
    authedP50Ms: authedResult.p50Ms,
    authedP99Ms: authedResult.p99Ms,
    bareReqPerSec: Math.round(bareResult.reqPerSec),
    bareP99Ms: bareResult.p99Ms,
    ratio: Math.round((authedResult.reqPerSec / bareResult.reqPerSec) * 1000) / 1000,
    goals: { ratio: '>= 0.25', authedP99Ms: '<= 20' },
  };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

if (process.argv[2] === '--serve') {
  const kind = process.argv[3];
  const ready = kind === 'bare' ? await serveBare() : await serveAuthed();
  process.send!(ready);
  if (kind === 'bare') process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
