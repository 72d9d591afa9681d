/**
 * `npm start`'s entry point as a process: bad configuration and a database from the future
 * stop it with a message that says what is wrong, before it serves anything.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { CaddyAdmin } from '../../adapters/edge/caddy-admin.ts';
import { caddyBin } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { createTestDatabase } from '../support/db.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { httpRequester } from '../support/http.ts';
import { available } from '../support/services.ts';

const entry = fileURLToPath(new URL('../../functions/selfhost/start.ts', import.meta.url));

function runStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry], {
      // The usage collector is off: parallel processes would all want STATS_LISTEN's port.
      env: { ...process.env, MODE: 'selfhost', STATS_INTERVAL_SECONDS: '0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  /** Ctrl-C, as a user stops it; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts selfdevop and resolves once it says it is running (or rejects with what it said). */
function startUntilUp(
  env: Record<string, string>,
  timeoutMs = 90_000,
  options: { detached?: boolean } = {},
): Promise<Running> {
  const child = spawn(process.execPath, [entry], {
    // Detached: a process group of its own, which a test can kill whole (node, PostgreSQL, Caddy).
    detached: options.detached ?? false,
    env: {
      ...process.env,
      MODE: 'selfhost',
      LOG_LEVEL: 'warn',
      STATS_INTERVAL_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(killer);
    return code;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => void stop().then(() => reject(new Error(`not up within ${timeoutMs} ms:\n${stderr}`))),
      timeoutMs,
    );
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
      if (stderr.includes('is running at')) {
        clearTimeout(timer);
        resolve({ child, stderr: () => stderr, stop });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was up:\n${stderr}`));
    });
  });
}

async function freePorts() {
  return {
    PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePort()),
    EDGE_DNS_LISTEN: `127.0.0.1:${await freePort()}`,
    CADDY_ADMIN_LISTEN: `127.0.0.1:${await freePort()}`,
    EDGE_HTTP_LISTEN: `127.0.0.1:${await freePort()}`,
    EDGE_HTTPS_LISTEN: `127.0.0.1:${await freePort()}`,
  };
}

const portOf = (listen: string) => listen.slice(listen.lastIndexOf(':') + 1);

describe('starting selfdevop', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase('start');
    await migrate(db.url);
    // A newer selfdevop migrated this database: a version this code does not have.
    // (vitest sets MODE=test in its environment; the child gets MODE=selfhost.)
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(
      `insert into schema_migrations (version, name, checksum) values (9999, 'from_the_future', 'x')`,
    );
    await c.end();
  });
  afterAll(async () => db?.drop());

  it('stops on a bad variable, naming it', async () => {
    const r = await runStart({ PORT: 'eighty', SIGNUP_MODE: 'sometimes' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('PORT:');
    expect(r.stderr).toContain('SIGNUP_MODE:');
  });

  it('refuses a database migrated by a newer version', async () => {
    const r = await runStart({
      DATABASE_URL: db.url,
      PORT: '39871',
      DATA_DIR: `/tmp/sdo-start-test-${process.pid}`,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/9999/);
  }, 40_000);

  it('refuses an explicit key file that does not exist rather than make a new key', async () => {
    const r = await runStart({
      DATABASE_URL: db.url,
      ENCRYPTION_KEY_FILE: '/nonexistent/selfdevop.key',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ENCRYPTION_KEY_FILE: /nonexistent/selfdevop.key does not exist');
  });

  it('names DATABASE_URL when nothing answers there', async () => {
    const port = await freePort();
    const r = await runStart({ DATABASE_URL: `postgres://selfdevop@127.0.0.1:${port}/selfdevop` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `cannot use the database at 127.0.0.1:${port}/selfdevop: nothing accepts connections at 127.0.0.1:${port}`,
    );
    expect(r.stderr).toContain('Check DATABASE_URL');
    expect(r.stderr).not.toContain('undefined');
  });

  it('says it waits for the migrations lock, and fails within its bound naming the session that holds it', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      // The lock a selfdevop migrating this database holds (adapters/db/migrator.ts).
      await holder.query('select pg_advisory_lock(7402115931)');
      const { rows } = await holder.query<{ pid: number }>('select pg_backend_pid() as pid');
      const started = Date.now();
      const r = await runStart({
        DATABASE_URL: db.url,
        DATA_DIR: `/tmp/sdo-start-test-lock-${process.pid}`,
        START_TIMEOUT_SECONDS: '4',
      });
      expect(Date.now() - started).toBeLessThan(25_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `selfdevop: waiting for the migrations lock, held by PostgreSQL pid ${rows[0]!.pid}`,
      );
      expect(r.stderr).toContain(
        `the database could not be migrated: another session (PostgreSQL pid ${rows[0]!.pid}) held the migrations lock for more than 4 s`,
      );
      expect(r.stderr).toContain(`select pg_terminate_backend(${rows[0]!.pid})`);
      expect(r.stderr).toContain('START_TIMEOUT_SECONDS');
    } finally {
      await holder.end();
      await rm(`/tmp/sdo-start-test-lock-${process.pid}`, { recursive: true, force: true });
    }
  }, 40_000);

  it('names DATA_DIR when it cannot be created', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdo-start-'));
    // A file where a directory must go: unwritable even for root, which tests may run as.
    await writeFile(join(dir, 'file'), '');
    const r = await runStart({ DATA_DIR: join(dir, 'file', 'data') });
    await rm(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot use ${join(dir, 'file', 'data')} as DATA_DIR: part of`);
    expect(r.stderr).toContain('is a file, not a directory');
    expect(r.stderr).toContain('Set DATA_DIR');
  });
});

const withEdge = (await available('docker')) && (await available('caddy'));

describe.skipIf(!withEdge)(
  'npm start alone: its own Caddy, a deploy, and a second start on the same machine',
  () => {
    let dataDir: string;
    let ports: Awaited<ReturnType<typeof freePorts>>;
    let first: Running;
    let db: Awaited<ReturnType<typeof createTestDatabase>>;
    let orgId: string | undefined;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      ports = await freePorts();
      db = await createTestDatabase('start_second');
      await migrate(db.url);
      first = await startUntilUp({ DATA_DIR: dataDir, CADDY_BIN: caddyBin, ...ports });
    }, 120_000);

    afterAll(async () => {
      const code = await first?.stop();
      // Its Caddy stops with it: nothing answers on the admin port any more.
      const caddyAfter =
        ports &&
        (await new CaddyAdmin(`http://${ports.CADDY_ADMIN_LISTEN}`, { maxAttempts: 1 })
          .request('GET', '/config/')
          .then(
            (r) => r.status,
            () => 'gone',
          ));
      if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
      await db?.drop();
      await rm(dataDir, { recursive: true, force: true });
      expect(code).toBe(0);
      expect(caddyAfter).toBe('gone');
    }, 60_000);

    it('runs its own Caddy: the admin API answers on loopback with the selfdevop server and the ask permission', async () => {
      expect(first.stderr()).toContain(
        `edge:      Caddy on ${ports.EDGE_HTTP_LISTEN} (HTTP) and ${ports.EDGE_HTTPS_LISTEN} (HTTPS), caddy binary ${caddyBin}`,
      );
      const res = await new CaddyAdmin(`http://${ports.CADDY_ADMIN_LISTEN}`, {
        maxAttempts: 1,
      }).request('GET', '/config/');
      expect(res.status).toBe(200);
      const config = JSON.parse(res.body);
      expect(config.apps.http.servers.selfdevop.listen).toEqual([
        ports.EDGE_HTTP_LISTEN,
        ports.EDGE_HTTPS_LISTEN,
      ]);
      expect(config.apps.tls.automation.on_demand.permission).toEqual({
        module: 'http',
        endpoint: `http://127.0.0.1:${ports.PORT}/api/domains/ask`,
      });
      // Certificates and locks under DATA_DIR, not the machine's own Caddy state.
      expect(config.storage).toEqual({
        module: 'file_system',
        root: join(dataDir, 'caddy', 'data'),
      });
    });

    it('deploys an app through the API and serves it through the Caddy it started', async () => {
      await ensureTestImages();
      const req = httpRequester(`http://127.0.0.1:${ports.PORT}`);
      const s = await req('POST', '/api/auth/local/signup', {
        body: { email: 'new-user@example.com', password: 'correct horse battery' },
      });
      expect(s.status, s.text).toBe(201);
      const token = s.body.token as string;
      orgId = s.body.org.id as string;
      const project = await req('POST', '/api/projects', { token, body: { name: 'shop' } });
      const node = await req('POST', '/api/nodes', {
        token,
        body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
      });
      expect(node.status, node.text).toBe(201);
      const service = await req('POST', '/api/services', {
        token,
        body: {
          projectId: project.body.id,
          name: 'web',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
          health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        },
      });
      expect(service.status, service.text).toBe(201);
      const release = await req('POST', '/api/releases', {
        token,
        body: { serviceId: service.body.id, image: 'selfdevop-test/app:v1' },
      });
      expect(release.status, release.text).toBe(202);
      let status = 'queued';
      let error: unknown;
      for (
        const end = Date.now() + 60_000;
        Date.now() < end && !['completed', 'failed'].includes(status);
      ) {
        await new Promise((r) => setTimeout(r, 200));
        const r = await req('GET', `/api/releases/${release.body.id}`, { token });
        ({ status, error } = r.body);
      }
      expect(status, String(error)).toBe('completed');
      const served = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = http.get(
          {
            host: '127.0.0.1',
            port: Number(portOf(ports.EDGE_HTTP_LISTEN)),
            path: '/version',
            headers: { host: service.body.hosts[0].host },
            agent: false,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
          },
        );
        r.on('error', reject);
      });
      expect(served).toEqual({ status: 200, body: 'v1' });
    }, 120_000);

    it('a second start on the same DATA_DIR names DATA_DIR', async () => {
      const r = await runStart({ DATA_DIR: dataDir, CADDY_BIN: caddyBin, ...(await freePorts()) });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the embedded PostgreSQL did not start');
      expect(r.stderr).toContain('most likely another selfdevop on the same DATA_DIR');
      expect(r.stderr).toContain('set DATA_DIR to another directory');
    });

    it('a second start with the same EMBEDDED_PG_PORT names it', async () => {
      const other = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      const r = await runStart({
        DATA_DIR: other,
        CADDY_BIN: caddyBin,
        ...(await freePorts()),
        EMBEDDED_PG_PORT: ports.EMBEDDED_PG_PORT,
      });
      await rm(other, { recursive: true, force: true });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `the embedded PostgreSQL did not start: port ${ports.EMBEDDED_PG_PORT} is already in use`,
      );
      expect(r.stderr).toContain('Set EMBEDDED_PG_PORT to a free port');
    }, 40_000);

    // On a database of its own, so each start meets exactly one taken port.
    const cases: [keyof typeof ports, (p: typeof ports) => string][] = [
      [
        'PORT',
        (p) =>
          `the API could not listen on 127.0.0.1:${p.PORT}: port ${p.PORT} is already in use\n  Set PORT to a free port`,
      ],
      [
        'EDGE_DNS_LISTEN',
        (p) =>
          `the edge's upstream DNS could not listen on ${p.EDGE_DNS_LISTEN}: port ${portOf(p.EDGE_DNS_LISTEN)} is already in use\n  Set EDGE_DNS_LISTEN`,
      ],
      [
        'CADDY_ADMIN_LISTEN',
        (p) =>
          `the edge (Caddy) could not listen on ${p.CADDY_ADMIN_LISTEN}: port ${portOf(p.CADDY_ADMIN_LISTEN)} is already in use\n  Set CADDY_ADMIN_LISTEN`,
      ],
      [
        'EDGE_HTTP_LISTEN',
        (p) =>
          `the edge (Caddy) could not listen on ${p.EDGE_HTTP_LISTEN}: port ${portOf(p.EDGE_HTTP_LISTEN)} is already in use\n  Set EDGE_HTTP_LISTEN`,
      ],
      [
        'EDGE_HTTPS_LISTEN',
        (p) =>
          `the edge (Caddy) could not listen on ${p.EDGE_HTTPS_LISTEN}: port ${portOf(p.EDGE_HTTPS_LISTEN)} is already in use\n  Set EDGE_HTTPS_LISTEN`,
      ],
    ];
    it.each(cases)(
      'a second start with the same %s names it',
      async (variable, message) => {
        const other = await mkdtemp(join(tmpdir(), 'sdo-start-'));
        const r = await runStart({
          DATA_DIR: other,
          DATABASE_URL: db.url,
          CADDY_BIN: caddyBin,
          ...(await freePorts()),
          [variable]: ports[variable],
        });
        await rm(other, { recursive: true, force: true });
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`selfdevop failed to start: ${message(ports)}`);
      },
      40_000,
    );

    it('stops the Caddy a killed selfdevop left behind, but not one a live selfdevop runs', async () => {
      const other = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      const own = {
        DATA_DIR: other,
        DATABASE_URL: db.url,
        CADDY_BIN: caddyBin,
        ...(await freePorts()),
      };
      const killed = await startUntilUp(own);
      killed.child.kill('SIGKILL');
      await new Promise((r) => killed.child.once('exit', r));
      const admin = `http://${own.CADDY_ADMIN_LISTEN}`;
      expect(
        (await new CaddyAdmin(admin, { maxAttempts: 1 }).request('GET', '/config/')).status,
      ).toBe(200);
      const again = await startUntilUp(own);
      try {
        const config = JSON.parse(
          (await new CaddyAdmin(admin, { maxAttempts: 1 }).request('GET', '/config/')).body,
        );
        expect(config.apps.http.servers.selfdevop.listen).toEqual([
          own.EDGE_HTTP_LISTEN,
          own.EDGE_HTTPS_LISTEN,
        ]);
        const beside = await runStart({ ...own, ...(await freePorts()) });
        expect(beside.code).toBe(1);
        expect(beside.stderr).toContain(
          `the edge (Caddy) did not start: ${join(other, 'caddy')} is in use by another selfdevop (pid ${again.child.pid})`,
        );
        expect(beside.stderr).toContain('set DATA_DIR to another directory');
      } finally {
        expect(await again.stop()).toBe(0);
        await rm(other, { recursive: true, force: true });
      }
      expect(
        await new CaddyAdmin(admin, { maxAttempts: 1 }).request('GET', '/config/').then(
          (r) => r.status,
          () => 'gone',
        ),
      ).toBe('gone');
    }, 90_000);

    it('starts again, within a bound, on the DATA_DIR of a run killed with its whole process tree', async () => {
      const other = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      // The embedded PostgreSQL (no DATABASE_URL) and its own Caddy, as `npm start` alone.
      const own = { DATA_DIR: other, CADDY_BIN: caddyBin, ...(await freePorts()) };
      try {
        const killed = await startUntilUp(own, 90_000, { detached: true });
        const gone = new Promise((r) => killed.child.once('exit', r));
        // kill -9 of the process group: node, its PostgreSQL and its Caddy, none cleaning up.
        process.kill(-killed.child.pid!, 'SIGKILL');
        await gone;
        // What the killed run left: PostgreSQL's lock file and Caddy's pid file.
        expect(existsSync(join(other, 'postgres', 'postmaster.pid'))).toBe(true);
        const started = Date.now();
        const again = await startUntilUp(own, 60_000);
        try {
          expect(Date.now() - started).toBeLessThan(60_000);
          const res = await httpRequester(`http://127.0.0.1:${own.PORT}`)('GET', '/health');
          expect(res.status).toBe(200);
        } finally {
          expect(await again.stop()).toBe(0);
        }
      } finally {
        await rm(other, { recursive: true, force: true });
      }
    }, 180_000);

    it('with no Caddy to run, serves the API and says what to install', async () => {
      const other = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      const alone = await startUntilUp({
        DATA_DIR: other,
        DATABASE_URL: db.url,
        CADDY_BIN: join(other, 'no-caddy-here'),
        ...(await freePorts()),
      });
      const code = await alone.stop();
      await rm(other, { recursive: true, force: true });
      expect(alone.stderr()).toContain(
        'edge:      none, so deploys fail until there is one. Install either:',
      );
      expect(alone.stderr()).toContain(
        `CADDY_BIN ${join(other, 'no-caddy-here')} is not an executable file`,
      );
      expect(code).toBe(0);
    }, 60_000);
  },
);

describe.skipIf(!withEdge)(
  'npm start with no caddy binary: a Caddy container on the local Docker Engine',
  () => {
    // selfhost/images/caddy as selfhost/build-images.sh builds it, under a tag of this test's own.
    const image = 'selfdevop-test/caddy:start-test';
    let db: Awaited<ReturnType<typeof createTestDatabase>>;

    beforeAll(async () => {
      const ctx = await mkdtemp(join(tmpdir(), 'sdo-caddy-image-'));
      await cp(fileURLToPath(new URL('../../selfhost/images/caddy', import.meta.url)), ctx, {
        recursive: true,
      });
      await copyFile(caddyBin, join(ctx, 'caddy'));
      await promisify(execFile)(
        'docker',
        ['build', '-q', '-t', image, '--build-arg', 'DEBIAN_BASE=selfdevop/debian:bookworm', ctx],
        {
          env: { ...process.env, DOCKER_BUILDKIT: '0' },
          timeout: 120_000,
        },
      );
      await rm(ctx, { recursive: true, force: true });
      db = await createTestDatabase('start_container');
      await migrate(db.url);
    }, 150_000);

    afterAll(async () => {
      await db?.drop();
    });

    const edgeContainers = async (dataDir: string) =>
      (
        await promisify(execFile)('docker', [
          'ps',
          '-aq',
          '--filter',
          `label=selfdevop.edge=${join(dataDir, 'caddy')}`,
        ])
      ).stdout
        .split('\n')
        .filter(Boolean);

    it('runs the image with its state under DATA_DIR, and removes the container when stopped', async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'sdo-start-'));
      const ports = await freePorts();
      // A PATH with node and no caddy on it.
      const running = await startUntilUp({
        DATA_DIR: dataDir,
        DATABASE_URL: db.url,
        CADDY_IMAGE: image,
        PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
        ...ports,
      });
      try {
        expect(running.stderr()).toMatch(
          new RegExp(
            `edge: +Caddy on ${ports.EDGE_HTTP_LISTEN} \\(HTTP\\) and ${ports.EDGE_HTTPS_LISTEN} \\(HTTPS\\), container selfdevop-caddy-[0-9a-f]{12} \\(${image}\\)`,
          ),
        );
        const res = await new CaddyAdmin(`http://${ports.CADDY_ADMIN_LISTEN}`, {
          maxAttempts: 1,
        }).request('GET', '/config/');
        expect(res.status).toBe(200);
        const config = JSON.parse(res.body);
        expect(config.apps.http.servers.selfdevop.listen).toEqual([
          ports.EDGE_HTTP_LISTEN,
          ports.EDGE_HTTPS_LISTEN,
        ]);
        expect(config.apps.tls.automation.on_demand.permission.endpoint).toBe(
          `http://127.0.0.1:${ports.PORT}/api/domains/ask`,
        );
        expect(config.storage).toEqual({ module: 'file_system', root: '/data/caddy' });
        expect(await edgeContainers(dataDir)).toHaveLength(1);
      } finally {
        expect(await running.stop()).toBe(0);
      }
      expect(await edgeContainers(dataDir)).toEqual([]);
      await rm(dataDir, { recursive: true, force: true });
    }, 120_000);
  },
);
