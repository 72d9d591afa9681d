/**
 * The operator's side: install.sh, docker compose, upgrade.sh, backup.sh and restore.sh,
 * run exactly as the README tells a self-hoster to run them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Given, Then, When } from '@cucumber/cucumber';
import { images, Install, mustRun, run, version, type RunResult } from '../support/stack.ts';
import { suite, type AcceptanceWorld } from '../support/world.ts';

const withVersion = (text: string) => text.replaceAll('{version}', version);

Given('selfdevop has been installed with install.sh', function (this: AcceptanceWorld) {
  const r = this.stack.lastInstall;
  assert.ok(r, 'install.sh did not run');
  assert.equal(r.code, 0, r.stderr);
});

Then('install.sh finished within {int} seconds', function (this: AcceptanceWorld, seconds: number) {
  const r = this.stack.lastInstall!;
  assert.ok(r.ms <= seconds * 1000, `install.sh took ${r.ms} ms`);
});

Then(
  'install.sh printed the dashboard URL and the signup command',
  function (this: AcceptanceWorld) {
    const out = this.stack.lastInstall!.stdout;
    assert.match(
      out,
      new RegExp(`selfdevop is up at http://127\\.0\\.0\\.1:${this.stack.httpPort}`),
    );
    assert.match(out, /\/api\/auth\/local\/signup/);
  },
);

Then('every service of the stack is healthy', async function (this: AcceptanceWorld) {
  await this.stack.waitHealthy(60_000);
});

Then('the install directory keeps its secrets private', async function (this: AcceptanceWorld) {
  for (const file of ['.env', 'secrets/encryption.key']) {
    const mode = (await stat(path.join(this.stack.dir, file))).mode & 0o777;
    assert.equal(mode.toString(8), '600', `${file} has mode ${mode.toString(8)}`);
  }
});

Then('only the worker has the Docker socket', async function (this: AcceptanceWorld) {
  const withSocket: string[] = [];
  for (const service of ['postgres', 'migrate', 'api', 'worker', 'caddy']) {
    const id = (
      await mustRun('docker', ['compose', 'ps', '-a', '-q', service], { cwd: this.stack.dir })
    ).stdout.trim();
    const mounts = (
      await mustRun('docker', ['inspect', '-f', '{{range .Mounts}}{{.Source}} {{end}}', id])
    ).stdout;
    if (mounts.includes('/var/run/docker.sock')) withSocket.push(service);
  }
  assert.deepEqual(withSocket, ['worker']);
});

Then(
  'the API and the worker reach the database only as logins that are no superuser',
  async function (this: AcceptanceWorld) {
    // Every connection from another container (the local socket is the operator's), with
    // its login's powers; the owner `selfdevop` is the migrate job's alone.
    const rows = await this.stack.sql(
      `select string_agg(distinct a.usename || ':' || r.rolsuper || ':' || r.rolbypassrls, ',')
       from pg_stat_activity a join pg_roles r on r.rolname = a.usename
       where a.datname = 'selfdevop' and a.client_addr is not null`,
    );
    assert.equal(rows, 'selfdevop_api:false:false,selfdevop_queue:false:false');
    // pg-boss's tables are the queue login's, with their TOAST tables (in pg_toast).
    const owned = await this.stack.sql(
      `select count(*) from pg_class
       where relowner in ('selfdevop_api'::regrole, 'selfdevop_queue'::regrole)
         and relnamespace not in ('pgboss'::regnamespace, 'pg_toast'::regnamespace)`,
    );
    assert.equal(owned, '0');
    const forced = await this.stack.sql(
      `select count(*) from pg_class where relnamespace = 'public'::regnamespace
         and relrowsecurity and not relforcerowsecurity`,
    );
    assert.equal(forced, '0');
  },
);

Then(
  'the database lives in the named volume {string}',
  async function (this: AcceptanceWorld, volume: string) {
    const id = (
      await mustRun('docker', ['compose', 'ps', '-q', 'postgres'], { cwd: this.stack.dir })
    ).stdout.trim();
    const mounts = (
      await mustRun('docker', [
        'inspect',
        '-f',
        '{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}} {{end}}',
        id,
      ])
    ).stdout.trim();
    assert.equal(mounts, `volume:${this.stack.project}_${volume}:/var/lib/postgresql/data`);
  },
);

Given("I note the install's secrets", async function (this: AcceptanceWorld) {
  const env = await this.stack.env();
  this.noted.secrets = {
    DB_PASSWORD: env.DB_PASSWORD,
    JWT_SECRET: env.JWT_SECRET,
    key: await this.stack.keyFile(),
  };
  assert.ok(env.DB_PASSWORD && env.JWT_SECRET);
});

When('I run install.sh again', async function (this: AcceptanceWorld) {
  const r = await this.stack.install({ fromBin: true });
  assert.equal(r.code, 0, r.stderr);
});

Then("the install's secrets are unchanged", async function (this: AcceptanceWorld) {
  const env = await this.stack.env();
  assert.deepEqual(
    { DB_PASSWORD: env.DB_PASSWORD, JWT_SECRET: env.JWT_SECRET, key: await this.stack.keyFile() },
    this.noted.secrets,
  );
});

Given('I note the users, services and releases', async function (this: AcceptanceWorld) {
  const fp = await this.stack.fingerprint();
  assert.ok(
    fp.users && fp.services && fp.releases,
    `nothing to compare yet: ${JSON.stringify(fp)}`,
  );
  this.noted.fingerprint = fp;
});

Then('the users, services and releases are unchanged', async function (this: AcceptanceWorld) {
  assert.deepEqual(await this.stack.fingerprint(), this.noted.fingerprint);
});

When(
  'I run {string} in the install directory',
  async function (this: AcceptanceWorld, command: string) {
    const [file, ...args] = command.split(' ');
    await mustRun(file!, args, { cwd: this.stack.dir, timeoutMs: 180_000 });
  },
);

Then('my session token still works', async function (this: AcceptanceWorld) {
  const res = await this.stack.api('GET', '/api/projects', { token: suite.owner!.token });
  assert.equal(res.status, 200, res.text);
});

// ---------------------------------------------------------------- upgrades
async function buildTag(tag: string, overlay?: string): Promise<string> {
  const args = ['selfhost/build-images.sh', '--version', tag];
  if (overlay) args.push('--migrations-overlay', overlay);
  await mustRun('bash', args, { timeoutMs: 600_000 });
  return `selfdevop/selfdevop:${tag}`;
}

When(
  'I upgrade to a rebuilt image tagged {string}',
  async function (this: AcceptanceWorld, tag: string) {
    const image = await buildTag(withVersion(tag));
    const r = await this.stack.script('upgrade.sh', ['--dir', this.stack.dir, '--image', image]);
    this.noted.upgrade = r;
    assert.equal(r.code, 0, `upgrade.sh failed:\n${r.stderr}`);
  },
);

When('I upgrade to a rebuilt image whose migration fails', async function (this: AcceptanceWorld) {
  const overlay = await mkdtemp(path.join(os.tmpdir(), 'sdo-broken-migration-'));
  try {
    await writeFile(path.join(overlay, '9999_acceptance_broken.sql'), 'select 1 / 0;\n');
    const image = await buildTag(`${version}-broken-migration`, overlay);
    this.noted.upgrade = await this.stack.script('upgrade.sh', [
      '--dir',
      this.stack.dir,
      '--image',
      image,
    ]);
  } finally {
    await rm(overlay, { recursive: true, force: true });
  }
});

Then('the upgrade fails, saying {string}', function (this: AcceptanceWorld, text: string) {
  const r = this.noted.upgrade as RunResult;
  assert.notEqual(r.code, 0, 'upgrade.sh succeeded');
  assert.ok(r.stderr.includes(withVersion(text)), r.stderr);
});

Then('the API reports version {string}', async function (this: AcceptanceWorld, expected: string) {
  const res = await this.stack.api('GET', '/health');
  assert.equal(res.status, 200, res.text);
  assert.equal((res.json as { version: string }).version, withVersion(expected));
});

Then('the api and the worker run {string}', async function (this: AcceptanceWorld, image: string) {
  for (const service of ['api', 'worker']) {
    const id = (
      await mustRun('docker', ['compose', 'ps', '-q', service], { cwd: this.stack.dir })
    ).stdout.trim();
    const running = (
      await mustRun('docker', ['inspect', '-f', '{{.Config.Image}}', id])
    ).stdout.trim();
    assert.equal(running, withVersion(image), service);
  }
});

// ---------------------------------------------------------------- backups
When('I take a backup with backup.sh', async function (this: AcceptanceWorld) {
  const r = await this.stack.script('backup.sh', ['--dir', this.stack.dir]);
  assert.equal(r.code, 0, r.stderr);
  this.noted.backup = r.stdout.trim().split('\n').pop();
});

Then('restore.sh --verify passes for that backup', async function (this: AcceptanceWorld) {
  const r = await this.stack.script('restore.sh', ['--verify', String(this.noted.backup)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /row counts match the manifest/);
});

Then(
  'restore.sh --verify refuses a copy of it with a damaged dump',
  async function (this: AcceptanceWorld) {
    const copy = await mkdtemp(path.join(os.tmpdir(), 'sdo-damaged-backup-'));
    try {
      await mustRun('cp', ['-a', `${String(this.noted.backup)}/.`, copy]);
      await writeFile(path.join(copy, 'db.dump'), 'not a dump', { flag: 'a' });
      const r = await this.stack.script('restore.sh', ['--verify', copy]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /checksum mismatch: db\.dump/);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  },
);

When('I restore that backup into a fresh install', async function (this: AcceptanceWorld) {
  const fresh = await Install.create('restored');
  suite.others.push(fresh);
  const installed = await fresh.install();
  assert.equal(installed.code, 0, installed.stderr);
  const r = await run(
    'bash',
    [path.join(fresh.dir, 'bin', 'restore.sh'), '--dir', fresh.dir, String(this.noted.backup)],
    { timeoutMs: 300_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  this.noted.fresh = fresh;
});

Then(
  'the fresh install has the same users, services and releases',
  async function (this: AcceptanceWorld) {
    const fresh = this.noted.fresh as Install;
    assert.deepEqual(await fresh.fingerprint(), this.noted.fingerprint);
  },
);

Then(
  'the owner can sign in to the fresh install and list the projects',
  async function (this: AcceptanceWorld) {
    const fresh = this.noted.fresh as Install;
    const login = await fresh.api('POST', '/api/auth/local/login', {
      body: { email: suite.owner!.email, password: suite.owner!.password },
    });
    assert.equal(login.status, 200, login.text);
    const list = await fresh.api('GET', '/api/projects', {
      token: (login.json as { token: string }).token,
    });
    assert.equal(list.status, 200, list.text);
    // The old session token too: the JWT secret came back with the backup.
    assert.equal(
      (await fresh.api('GET', '/api/projects', { token: suite.owner!.token })).status,
      200,
    );
  },
);

// ---------------------------------------------------------------- offline
Then(
  'every service of the stack has pull policy {string}',
  async function (this: AcceptanceWorld, policy: string) {
    const r = await mustRun('docker', ['compose', 'config', '--format', 'json'], {
      cwd: this.stack.dir,
    });
    const services = (
      JSON.parse(r.stdout) as {
        services: Record<string, { pull_policy?: string; profiles?: string[] }>;
      }
    ).services;
    const wrong = Object.entries(services)
      .filter(([, s]) => !s.profiles?.length && s.pull_policy !== policy)
      .map(([name, s]) => `${name}:${s.pull_policy ?? 'unset'}`);
    assert.deepEqual(wrong, []);
  },
);

Then('every image of the stack was built on this machine', async function (this: AcceptanceWorld) {
  for (const image of Object.values(images)) {
    const labels = (
      await mustRun('docker', [
        'image',
        'inspect',
        '-f',
        '{{index .Config.Labels "selfdevop.inputs"}}',
        image,
      ])
    ).stdout.trim();
    assert.match(labels, /^[0-9a-f]{16}$/, `${image} carries no build-images.sh inputs label`);
  }
});

When('the whole stack is recreated with pulling disabled', async function (this: AcceptanceWorld) {
  await mustRun('docker', ['compose', 'up', '-d', '--force-recreate', '--pull', 'never'], {
    cwd: this.stack.dir,
    timeoutMs: 180_000,
  });
});

// ---------------------------------------------------------------- air-gapped bundles
When(
  'I save the images into a bundle with build-images.sh --save',
  async function (this: AcceptanceWorld) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-bundle-'));
    this.noted.bundleDir = dir;
    this.noted.bundle = path.join(dir, 'selfdevop-images.tar.gz');
    await mustRun('bash', ['selfhost/build-images.sh', '--save', String(this.noted.bundle)], {
      timeoutMs: 600_000,
    });
  },
);

Then(
  'the bundle holds the app, PostgreSQL, Caddy, Prometheus, Alertmanager and Node.js build images',
  async function (this: AcceptanceWorld) {
    const r = await mustRun('tar', ['-xzOf', String(this.noted.bundle), 'manifest.json']);
    const tags = (JSON.parse(r.stdout) as { RepoTags: string[] | null }[])
      .flatMap((m) => m.RepoTags ?? [])
      .sort();
    assert.deepEqual(
      tags,
      [
        images.caddy,
        images.postgres,
        images.prometheus,
        images.alertmanager,
        images.nodeBuild,
        images.app,
      ].sort(),
    );
  },
);

When('I install selfdevop afresh from the bundle', async function (this: AcceptanceWorld) {
  const fresh = await Install.create('bundle');
  suite.others.push(fresh);
  try {
    const r = await fresh.install({ images: String(this.noted.bundle) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /loading images from/);
  } finally {
    await rm(String(this.noted.bundleDir), { recursive: true, force: true });
  }
  this.noted.fresh = fresh;
});

Then(
  'the fresh install is healthy and answers GET \\/health',
  async function (this: AcceptanceWorld) {
    const fresh = this.noted.fresh as Install;
    await fresh.waitHealthy(60_000);
    assert.equal((await fresh.env()).PULL_POLICY, 'never');
    const res = await fresh.api('GET', '/health');
    assert.equal(res.status, 200, res.text);
  },
);

// ---------------------------------------------------------------- refusals
Given("the install's .env has been lost", async function (this: AcceptanceWorld) {
  this.noted.startedAt = await startTimes(this.stack);
  await rename(path.join(this.stack.dir, '.env'), path.join(this.stack.dir, '.env.kept-by-test'));
});

When('I run install.sh again, expecting it to fail', async function (this: AcceptanceWorld) {
  try {
    this.noted.install = await this.stack.install({ fromBin: true });
  } finally {
    await rename(path.join(this.stack.dir, '.env.kept-by-test'), path.join(this.stack.dir, '.env'));
  }
});

Then(
  'install.sh explains that .env must be restored from a backup',
  function (this: AcceptanceWorld) {
    const r = this.noted.install as RunResult;
    assert.notEqual(r.code, 0, 'install.sh succeeded');
    assert.match(
      r.stderr,
      /lacks DB_PASSWORD or JWT_SECRET, but the database volume \S+_pgdata exists\. Restore \.env from a backup/,
    );
  },
);

Then('no container of the stack was touched', async function (this: AcceptanceWorld) {
  assert.deepEqual(await startTimes(this.stack), this.noted.startedAt);
});

async function startTimes(install: Install): Promise<string> {
  // By the compose project's label: this must work while .env is missing.
  const ids = (
    await mustRun('docker', [
      'ps',
      '-aq',
      '--filter',
      `label=com.docker.compose.project=${install.project}`,
    ])
  ).stdout
    .split('\n')
    .filter(Boolean);
  return (await mustRun('docker', ['inspect', '-f', '{{.Name}} {{.State.StartedAt}}', ...ids]))
    .stdout;
}

When(
  'I upgrade to a rebuilt image that never becomes healthy',
  async function (this: AcceptanceWorld) {
    // The same app with a health check that always fails: its migrations pass, its services never turn healthy.
    const ctx = await mkdtemp(path.join(os.tmpdir(), 'sdo-unhealthy-image-'));
    const image = `selfdevop/selfdevop:${version}-never-healthy`;
    try {
      await writeFile(
        path.join(ctx, 'Dockerfile'),
        `FROM ${images.app}\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["false"]\nLABEL selfdevop.inputs=acceptance-never-healthy\n`,
      );
      await mustRun('docker', ['build', '-q', '-t', image, ctx], { env: { DOCKER_BUILDKIT: '0' } });
    } finally {
      await rm(ctx, { recursive: true, force: true });
    }
    this.noted.upgrade = await this.stack.script('upgrade.sh', [
      '--dir',
      this.stack.dir,
      '--image',
      image,
      '--timeout',
      '20',
    ]);
    await run('docker', ['rmi', image]);
  },
);
