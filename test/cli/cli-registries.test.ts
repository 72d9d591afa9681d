/**
 * `selfdevop registries`: the real CLI process, spawned as CI runs it (credentials in the
 * environment), against the self-hosted API on a real PostgreSQL database. The password
 * comes on stdin, never as an argument, and is never printed back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';

describe('the selfdevop CLI for registries', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let env: Record<string, string>;

  const cli = (args: string[], stdin = '') => runCli(args, { cwd: dir, env, stdin });

  beforeAll(async () => {
    api = await startSelfhostApi();
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-registries@example.com', password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const k = await api.request('POST', `/api/orgs/${s.body.org.id}/api-keys`, {
      token: s.body.token,
      body: { name: 'ci', role: 'admin' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: k.body.key as string };
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-registries-'));
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds a credential with the password on stdin, lists it without the password, removes it', async () => {
    const empty = await cli(['registries']);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain('no registry credentials yet');

    const added = await cli(
      ['registries', 'add', 'Registry.Example.test', '--username', 'ci', '--json'],
      'cli-secret-token\n',
    );
    expect(added.code, added.stderr).toBe(0);
    const created = JSON.parse(added.stdout) as { id: string; server: string };
    expect(created.server).toBe('registry.example.test');

    const listed = await cli(['registries']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/registry\.example\.test\s+ci/);
    for (const out of [added.stdout, listed.stdout, added.stderr])
      expect(out).not.toContain('cli-secret-token');

    const removed = await cli(['registries', 'rm', created.id]);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await cli(['registries'])).stdout).toContain('no registry credentials yet');
  });

  it('refuses a password argument, a missing username, and a server that is not a host', async () => {
    const arg = await cli(['registries', 'add', 'r.example.test', 'hunter2', '--username', 'ci']);
    expect(arg.code).toBe(2);
    expect(arg.stderr).toContain('takes no password argument');
    const noUser = await cli(['registries', 'add', 'r.example.test'], 'p');
    expect(noUser.code).toBe(2);
    expect(noUser.stderr).toContain('--username');
    const bad = await cli(['registries', 'add', 'not a host', '--username', 'ci'], 'p');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('is not a registry host[:port]');
  });
});
