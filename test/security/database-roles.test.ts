/**
 * Hole 10 (database roles), replayed against `npm start` on its embedded PostgreSQL: the
 * review found RLS not forced, `users` with its bcrypt hashes readable by the app, and the
 * running control plane connected as the cluster's superuser, confined only by a SET ROLE
 * that any statement of the same session could undo (RESET ROLE).
 *
 * The replay finds the logins the running process really uses (pg_stat_activity, read as
 * the superuser from DATA_DIR/secrets), connects as each with the password `npm start`
 * stored for it, and tries what an attacker with the app's connection would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caddyBin } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { httpRequester, type Requester } from '../support/http.ts';

const entry = fileURLToPath(new URL('../../functions/selfhost/start.ts', import.meta.url));

/** Which generated secret holds each login's password (what `npm start` writes). */
const secretOf: Record<string, string> = {
  postgres: 'postgres-password',
  selfdevop_api: 'postgres-api-password',
  selfdevop_queue: 'postgres-queue-password',
};

let child: ChildProcess;
let exited: Promise<number | null>;
let dataDir: string;
let pgPort: number;
let req: Requester;
let stderr = '';

async function connect(user: string): Promise<pg.Client> {
  const password = (await readFile(join(dataDir, 'secrets', secretOf[user]!), 'utf8')).trim();
  const c = new pg.Client({
    host: '127.0.0.1',
    port: pgPort,
    user,
    password,
    database: 'selfdevop',
  });
  await c.connect();
  return c;
}

async function as<T>(user: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(user);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'succeeded',
    (e: unknown) => (e as { code?: string }).code ?? String(e),
  );

/** The logins of the running control plane's connections, as the superuser sees them. */
async function runtimeLogins(): Promise<{ usename: string; rolsuper: boolean }[]> {
  return as('postgres', async (c) => {
    const r = await c.query<{ usename: string; rolsuper: boolean }>(
      `select distinct a.usename, r.rolsuper from pg_stat_activity a
       join pg_roles r on r.rolname = a.usename
       where a.datname = 'selfdevop' and a.pid <> pg_backend_pid() order by a.usename`,
    );
    return r.rows;
  });
}

beforeAll(async () => {
  // Under /tmp: the embedded PostgreSQL runs as its own user and must traverse DATA_DIR.
  dataDir = await mkdtemp('/tmp/sdo-db-roles-');
  pgPort = await freePort();
  const port = await freePort();
  child = spawn(process.execPath, [entry], {
    env: {
      ...process.env,
      MODE: 'selfhost',
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      CADDY_BIN: caddyBin,
      PORT: String(port),
      EMBEDDED_PG_PORT: String(pgPort),
      EDGE_DNS_LISTEN: `127.0.0.1:${await freePort()}`,
      CADDY_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`,
      EDGE_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
      EDGE_HTTPS_LISTEN: `127.0.0.1:${await freePort()}`,
      SIGNUP_MODE: 'open',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not up within 90 s:\n${stderr}`)), 90_000);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c;
      if (stderr.includes('is running at')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was up:\n${stderr}`));
    });
  });
  req = httpRequester(`http://127.0.0.1:${port}`);
  // Two orgs with data, through the API as any user would make them.
  for (const email of ['alice@example.test', 'bob@example.test']) {
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email, password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const p = await req('POST', '/api/projects', {
      token: s.body.token as string,
      body: { name: 'shop' },
    });
    expect(p.status, p.text).toBe(201);
  }
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(killer);
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('the embedded database', () => {
  it('is used by the running control plane through logins that are not superusers', async () => {
    const logins = await runtimeLogins();
    expect(logins.length, stderr).toBeGreaterThan(0);
    for (const l of logins)
      expect(l, `${l.usename} is a superuser`).toMatchObject({ rolsuper: false });
    // The API's pool and pg-boss's, each with its own login.
    expect(logins.map((l) => l.usename)).toEqual(['selfdevop_api', 'selfdevop_queue']);
    for (const { usename } of logins) {
      const me = await as(usename, (c) =>
        c.query<{ rolsuper: boolean; rolbypassrls: boolean }>(
          'select rolsuper, rolbypassrls from pg_roles where rolname = current_user',
        ),
      );
      expect(me.rows, usename).toEqual([{ rolsuper: false, rolbypassrls: false }]);
    }
  });

  it("refuses the app's login every read of users, whatever role it switches to", async () => {
    const [api] = (await runtimeLogins()).filter((l) => l.usename !== 'selfdevop_queue');
    await as(api!.usename, async (c) => {
      expect(await codeOf(c.query('select * from users'))).toBe('42501');
      expect(await codeOf(c.query('select email, password_hash from users'))).toBe('42501');
      // SET ROLE was the only thing between a superuser session and the data; undoing it
      // must leave the session with nothing more than the login's own rights.
      await c.query('reset role');
      expect(await codeOf(c.query('select * from users'))).toBe('42501');
      expect(await codeOf(c.query('set role postgres'))).toBe('42501');
    });
  });

  it('shows no tenant rows without app.org_id, even after RESET ROLE', async () => {
    for (const { usename } of await runtimeLogins()) {
      await as(usename, async (c) => {
        await c.query('reset role');
        for (const table of ['orgs', 'memberships', 'projects', 'audit_events']) {
          const r = await codeOf(c.query(`select * from ${table}`).then((x) => x.rows.length));
          // No privilege at all (the queue's login) or no row: never another org's data.
          expect(['succeeded', '42501'], `${usename} reading ${table}`).toContain(r);
          if (r === 'succeeded')
            expect((await c.query(`select * from ${table}`)).rows, table).toEqual([]);
        }
      });
    }
    // The rows are there: the superuser sees both orgs.
    const orgs = await as('postgres', (c) => c.query('select id from orgs'));
    expect(orgs.rows).toHaveLength(2);
  });

  it('forces RLS, so even the tables’ owner sees nothing without an org', async () => {
    const forced = await as('postgres', (c) =>
      c.query<{ relname: string }>(
        `select relname from pg_class where relnamespace = 'public'::regnamespace
         and relrowsecurity and not relforcerowsecurity`,
      ),
    );
    expect(forced.rows).toEqual([]);
  });

  it('still serves every org its own data through the API', async () => {
    const login = await req('POST', '/api/auth/local/login', {
      body: { email: 'alice@example.test', password: 'correct horse battery' },
    });
    expect(login.status, login.text).toBe(200);
    const projects = await req('GET', '/api/projects', { token: login.body.token as string });
    expect(projects.status, projects.text).toBe(200);
    expect((projects.body.items as unknown[]).length).toBe(1);
  });
});
