/**
 * `selfdevop domains` end to end: the CLI adds a domain and prints the records, the test
 * creates them in a real DNS server, and the CLI follows the domain to `active`, after
 * which HTTPS through Caddy answers with a certificate from a real ACME CA (pebble).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImages, removeContainersByLabel, testImages } from '../support/docker.ts';
import { pebbleAvailable } from '../support/pebble.ts';
import { available } from '../support/services.ts';
import { startDomainStack } from './domain-stack.ts';

const ready =
  (await available('docker')) && (await available('caddy')) && (await pebbleAvailable());
const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');

describe.skipIf(!ready)('selfdevop domains against DNS, pebble and Caddy', () => {
  let stack: Awaited<ReturnType<typeof startDomainStack>>;
  let dir: string;
  let env: Record<string, string>;
  let orgId: string;

  /** The CLI with credentials from the environment only, as in CI (no login, no config file). */
  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, ...args], {
        cwd: dir,
        env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'no-config'), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
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
    });
  }

  beforeAll(async () => {
    await ensureTestImages();
    stack = await startDomainStack();
    const s = await stack.api.request('POST', '/api/auth/local/signup', {
      body: { email: 'dns@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    const k = await stack.api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: s.body.token,
      body: { name: 'ci', role: 'deployer' },
    });
    env = { SELFDEVOP_URL: stack.api.url, SELFDEVOP_TOKEN: k.body.key };
    await stack.api.request('POST', '/api/nodes', {
      token: s.body.token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    // A deployer key cannot create projects; the owner's session does, as a person would in the dashboard.
    const p = await stack.api.request('POST', '/api/projects', {
      token: s.body.token,
      body: { name: 'shop' },
    });
    await stack.api.request('POST', '/api/services', {
      token: s.body.token,
      body: {
        projectId: p.body.id,
        name: 'web',
        image: testImages.app,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
      },
    });
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-dns-'));
    await mkdir(join(dir, 'no-config'));
    await writeFile(
      join(dir, 'selfdevop.yml'),
      `project: shop\nservices:\n  web:\n    image: ${testImages.app}\n    port: 8080\n`,
    );
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds a domain, shows its records, and follows it to active over HTTPS', async () => {
    const deployed = await cli(['deploy', '--quiet']);
    expect(deployed.code, deployed.stderr + deployed.stdout).toBe(0);
    expect(deployed.stdout).not.toContain('created service'); // it existed: only the image ships

    const added = await cli(['domains', 'add', 'shop.example.test', '--service', 'web']);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^shop\.example\.test {2}pending_dns/);
    expect(added.stdout).toMatch(/TXT\s+_selfdevop-challenge\.shop\.example\.test\s+sdo-\S+/);
    expect(added.stdout).toMatch(/CNAME\s+shop\.example\.test\s+web-production-\S+\.localhost/);

    const [domain] = JSON.parse((await cli(['domains', 'list', '--json'])).stdout) as {
      id: string;
      records: { type: string; name: string; value: string }[];
    }[];
    // challtestsrv answers every name with 127.0.0.1, the edge's address (edgeIpv4), so the
    // host already points at the edge; the TXT record is the one left to create.
    const txt = domain!.records.find((r) => r.type === 'TXT')!;
    await stack.dns.setTxt(txt.name, txt.value);
    const verify = await cli(['domains', 'verify', 'shop.example.test']);
    expect(verify.code, verify.stderr).toBe(0);
    const status = await cli(['domains', 'status', domain!.id, '--wait', '--json']);
    expect(status.code, status.stdout + status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      status: 'active',
      dnsStatus: 'verified',
      tlsStatus: 'active',
      lastError: null,
    });
    expect(await stack.viaHttps('shop.example.test')).toEqual({ status: 200, body: 'v1' });

    const removed = await cli(['domains', 'rm', 'shop.example.test']);
    expect(removed.code, removed.stderr).toBe(0);
    const gone = await cli(['domains', 'status', 'shop.example.test']);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(
      'selfdevop domains: domain shop.example.test not found: add it with selfdevop domains add shop.example.test --service NAME',
    );
  }, 120_000);

  it('says in words why a domain is not verified yet', async () => {
    const added = await cli(['domains', 'add', 'www.example.test', '--service', 'web', '--json']);
    expect(added.code, added.stderr).toBe(0);
    const id = (JSON.parse(added.stdout) as { id: string }).id;
    let text = '';
    for (let i = 0; i < 60 && !text.includes('last error:'); i++) {
      text = (await cli(['domains', 'status', id])).stdout;
      if (!text.includes('last error:')) await new Promise((r) => setTimeout(r, 500));
    }
    expect(text).toMatch(/^last error: .*TXT/m);
    expect(text).toContain('DNS records to set');
  }, 60_000);
});
