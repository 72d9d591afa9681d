/**
 * The `selfdevop` CLI end to end: the real process, spawned as a user would run it, against
 * the self-hosted control plane with its workers, a real Docker Engine and a real Caddy.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRelease } from '../../core/releases/create.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { ensureTestImages, removeContainersByLabel, testImages } from '../support/docker.ts';
import { makeTestPki } from '../support/docker-tls.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe.skipIf(!ready)('the selfdevop CLI against a running control plane', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let key: string;
  /** The first account's session: the operator's, who registers this machine's engine. */
  let session: string;
  let orgId: string;
  /** Wall time of the README path: signup and key (API), login, nodes add, deploy, serving. */
  let walkMs = 0;

  /** Spawns `node cli/main.ts …` in the project folder with a private config dir. */
  function cli(
    args: string[],
    options: { input?: string; env?: Record<string, string> } = {},
  ): Promise<Run> {
    return new Promise((resolve, reject) => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        XDG_CONFIG_HOME: join(dir, 'config'),
        ...options.env,
      };
      delete env.SELFDEVOP_URL;
      delete env.SELFDEVOP_TOKEN;
      Object.assign(env, options.env);
      const child = spawn(process.execPath, [cliMain, ...args], {
        cwd: join(dir, 'app'),
        env,
        stdio: 'pipe',
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(options.input ?? '');
    });
  }

  const viaCaddy = (host: string, path = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get(
        { host: '127.0.0.1', port: caddy.httpPort, path, headers: { host }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
        },
      );
      r.on('error', reject);
    });

  const manifest = (image: string) => `# the shop's deploy file
project: shop
services:
  web:
    image: ${image}
    port: 8080
    healthcheck: /health
    env:
      GREETING: hello
    health: { intervalMs: 100, successes: 2, deadlineMs: 6000, timeoutMs: 1000 }
    warmSeconds: 600
    drainSeconds: 5
`;

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
    });
    const signupStarted = Date.now();
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    session = s.body.token;
    const k = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: s.body.token,
      body: { name: 'cli', role: 'admin' },
    });
    expect(k.status, k.text).toBe(201);
    key = k.body.key;
    walkMs += Date.now() - signupStarted;
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-'));
    await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'app')));
    await writeFile(join(dir, 'app', 'selfdevop.yml'), manifest(testImages.app));
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses bad credentials with one clear line and a non-zero exit', async () => {
    const bad = await cli(['login', '--url', api.url, '--token', 'sdo_not_a_real_key']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toEqual(['selfdevop login: API key is not valid']);
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await cli(['nodes'], {
      env: { SELFDEVOP_URL: closed, SELFDEVOP_TOKEN: key },
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim()).toBe(
      `selfdevop nodes: cannot reach the API at ${closed}: ECONNREFUSED`,
    );
    const none = await cli(['releases']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('not logged in: run selfdevop login');
    const usage = await cli(['deploy', '--imag', 'x']);
    expect(usage.code).toBe(2);
  });

  it('logs in with a key from stdin and stores it readable by its owner only', async () => {
    const started = Date.now();
    const r = await cli(['login', '--url', api.url], { input: `${key}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('logged in');
    expect(r.stdout).not.toContain(key);
    const file = join(dir, 'config', 'selfdevop', 'config.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ url: api.url, token: key });
    const addLocal = ['nodes', 'add', 'local', '--docker-host', 'unix:///var/run/docker.sock'];
    // This machine's engine is the operator's: an API key never registers it, whoever made
    // it; the install's first account does, with its session.
    const byKey = await cli([...addLocal, '--address', '127.0.0.1']);
    expect(byKey.code).not.toBe(0);
    expect(byKey.stderr).toContain(
      "dockerHost: unix:// is a socket on the control plane's own machine",
    );
    const nodes = await cli([...addLocal, '--address', '127.0.0.1'], {
      env: { SELFDEVOP_TOKEN: session },
    });
    expect(nodes.code, nodes.stderr).toBe(0);
    const listed = JSON.parse((await cli(['nodes', '--json'])).stdout) as { name: string }[];
    expect(listed.map((n) => n.name)).toEqual(['local']);
    walkMs += Date.now() - started;
  });

  let host: string;

  it('deploys from selfdevop.yml, creating what is missing, and shows every step', async () => {
    const started = Date.now();
    const r = await cli(['deploy']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('created project shop');
    expect(r.stdout).toContain('created service web');
    for (const step of ['build', 'start_candidate', 'health_check', 'switch_traffic', 'complete']) {
      expect(r.stdout).toMatch(new RegExp(`✓ ${step} \\(\\d+\\.\\ds\\)`));
    }
    expect(r.stdout).toContain('resolving image selfdevop-test/app:v1'); // the streamed log
    expect(r.stdout).toMatch(/release rel_\w+ completed in/);
    host = /served at (\S+)/.exec(r.stdout)![1]!;
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'v1' });
    expect(await viaCaddy(host, '/env/GREETING')).toMatchObject({ body: 'hello' });
    walkMs += Date.now() - started;
    console.log(
      `cli: empty control plane to first app serving through Caddy in ${(walkMs / 1000).toFixed(1)} s`,
    );

    const services = JSON.parse((await cli(['services', '--json'])).stdout) as {
      name: string;
      hosts: { host: string }[];
    }[];
    expect(services).toMatchObject([{ name: 'web', hosts: [{ host }] }]);
  }, 90_000);

  it('exits non-zero naming the failing step when a deploy fails, and v1 keeps serving', async () => {
    const r = await cli(['deploy', '--image', testImages.unhealthy, '--service', 'web']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/✗ health_check \(\d+\.\ds\): health check did not pass/);
    expect(r.stderr.trim()).toMatch(
      /^deploy of web failed at step health_check: health check did not pass within 6000 ms/,
    );
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('lists releases as JSON, and rolls back to the warm previous release', async () => {
    const v2 = await cli(['deploy', '--image', testImages.appV2, '--service', 'web', '--quiet']);
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.stdout).not.toContain('resolving image');
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'v2' });

    const listed = await cli(['releases', '--json']);
    expect(listed.code).toBe(0);
    const releases = JSON.parse(listed.stdout) as { id: string; status: string; image: string }[];
    expect(releases.map((r) => `${r.image} ${r.status}`)).toEqual([
      `${testImages.app} completed`,
      `${testImages.unhealthy} failed`,
      `${testImages.appV2} completed`,
    ]);
    const table = await cli(['releases']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+IMAGE/);

    const rb = await cli(['rollback', '--service', 'web']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toContain(
      `rolled back ${releases[2]!.id}: traffic is back on ${releases[0]!.id}`,
    );
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'v1' });
    const again = await cli(['rollback', releases[2]!.id]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^selfdevop rollback: .*rolled_back/);

    const logs = await cli(['logs', releases[0]!.id]);
    expect(logs.stdout).toContain('traffic switched to');
    const followed = await cli(['logs', '--service', 'web', '--follow']);
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toContain(`resolving image ${testImages.appV2}`);
    expect(followed.stdout.trim().split('\n').at(-1)).toBe(
      `release ${releases[2]!.id} rolled_back`,
    );
    const json = JSON.parse((await cli(['logs', releases[0]!.id, '--json'])).stdout) as {
      seq: number;
    }[];
    expect(json.map((l) => l.seq)).toEqual(json.map((_, i) => i + 1));
  }, 90_000);

  it('sets a secret from stdin without echoing it; lists and removes it', async () => {
    const value = 'sk_live_do-not-print-me';
    const set = await cli(['secrets', 'set', 'STRIPE_KEY', '--service', 'web'], { input: value });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout + set.stderr).not.toContain(value);
    const list = await cli(['secrets', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject([
      { name: 'STRIPE_KEY', environment: 'production' },
    ]);
    expect(list.stdout).not.toContain(value);
    expect((await cli(['secrets', 'rm', 'STRIPE_KEY'])).code).toBe(0);
    expect(JSON.parse((await cli(['secrets', 'list', '--json'])).stdout)).toEqual([]);
    const badName = await cli(['secrets', 'set', 'not a name'], { input: 'x' });
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(
      /^selfdevop secrets: name: must be a valid environment variable name/,
    );
  });

  it('reports a broken selfdevop.yml by field', async () => {
    await writeFile(
      join(dir, 'app', 'broken.yml'),
      'project: shop\nservices:\n  web:\n    image: x\n    port: "eighty"\n',
    );
    const r = await cli(['deploy', '-f', 'broken.yml']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^selfdevop deploy: broken\.yml: services\.web\.port: /);
  });

  it('adds a TLS node from certificate files, rotates them, and never prints the key', async () => {
    const pki = await makeTestPki();
    const files = {
      ca: pki.ca,
      cert: pki.clientCert,
      key: pki.clientKey,
      'other-cert': pki.otherClientCert,
      'other-key': pki.otherClientKey,
    };
    for (const [name, pem] of Object.entries(files))
      await writeFile(join(dir, 'app', `${name}.pem`), pem);
    const tlsFlags = ['--tls-ca', 'ca.pem', '--tls-cert', 'cert.pem', '--tls-key', 'key.pem'];
    const remote = ['--docker-host', 'tcp://203.0.113.9:2376', '--address', '203.0.113.9'];

    const plain = await cli(['nodes', 'add', 'remote', ...remote]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^selfdevop nodes: tls: is required for tcp:\/\/203\.0\.113\.9/);
    const half = await cli(['nodes', 'add', 'remote', ...remote, '--tls-ca', 'ca.pem']);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('--tls-ca, --tls-cert and --tls-key go together');
    const missing = await cli([
      'nodes',
      'add',
      'remote',
      ...remote,
      ...tlsFlags.slice(0, 5),
      'nope.pem',
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read --tls-key nope.pem: ENOENT');

    const added = await cli(['nodes', 'add', 'remote', ...remote, ...tlsFlags]);
    expect(added.code, added.stderr).toBe(0);
    const listed = await cli(['nodes']);
    expect(listed.stdout).toMatch(
      /remote\s+engine\s+active\s+(unknown|reachable|lost)\s+\S+\s+tcp:\/\/203\.0\.113\.9:2376\s+203\.0\.113\.9\s+tls\s/,
    );
    const asJson = JSON.parse((await cli(['nodes', '--json'])).stdout) as {
      name: string;
      tls: unknown;
    }[];
    expect(asJson.find((n) => n.name === 'remote')?.tls).toEqual({ configured: true });

    const rotated = await cli([
      'nodes',
      'rotate',
      'remote',
      '--tls-ca',
      'ca.pem',
      '--tls-cert',
      'other-cert.pem',
      '--tls-key',
      'other-key.pem',
    ]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toContain('rotated the tls credentials of node remote');
    const nothing = await cli(['nodes', 'rotate', 'remote']);
    expect(nothing.code).toBe(2);
    const unknown = await cli(['nodes', 'rotate', 'nowhere', ...tlsFlags]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('node nowhere not found');

    const printed = [added, listed, rotated].map((r) => r.stdout + r.stderr).join('\n');
    for (const pem of [pki.clientKey, pki.otherClientKey])
      expect(printed).not.toContain(pem.split('\n')[1]);
  });

  it('cancels the release in flight of a service, and refuses it once finished', async () => {
    // A release whose first step never reached the queue: in flight, and going nowhere.
    const services = JSON.parse((await cli(['services', '--json'])).stdout) as {
      id: string;
      name: string;
      projectId: string;
    }[];
    const web = services.find((x) => x.name === 'web')!;
    const deps = api.system.release;
    const stuck = await deps.store.withOrg(orgId, async (repos) => {
      const environment = await repos.environments.findByName(web.projectId, 'production');
      return insertRelease(
        deps,
        repos,
        {
          serviceId: web.id,
          environmentId: environment!.id,
          image: testImages.appV2,
          gitSha: null,
          kind: 'deploy',
        },
        { actorType: 'system', actorId: 'test' },
        null,
      );
    });
    const cancelled = await cli(['cancel', '--service', 'web']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toMatch(
      new RegExp(`^cancelled ${stuck.id} \\(${testImages.appV2}\\): cancelled by API key \\w+`),
    );
    const again = await cli(['cancel', stuck.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^selfdevop cancel: .*cannot be cancelled: it is failed/);
    const none = await cli(['cancel', '--service', 'web']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('web has no release in flight to cancel');
  });
});
