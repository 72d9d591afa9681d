/**
 * A real ACME CA and DNS server for custom-domain tests, per TESTING.md "ACME and DNS":
 * pebble-challtestsrv answers DNS (every A query → 127.0.0.1 by default, TXT/CNAME set
 * through its management API), pebble issues certificates after validating HTTP-01 on
 * Caddy's HTTP port, and a private Caddy runs with on-demand TLS pointing at pebble.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { caddyBaseConfig } from '../../core/edge/caddy-route.ts';
import { CaddyAdmin } from '../../adapters/edge/caddy-admin.ts';
import { caddyBin } from './caddy.ts';
import { freePort } from './ports.ts';
import { canConnect, isCi } from './services.ts';

export const pebbleBin = process.env.PEBBLE_BIN ?? '/usr/bin/pebble';
export const challtestsrvBin = process.env.CHALLTESTSRV_BIN ?? '/usr/bin/pebble-challtestsrv';

/** For `describe.skipIf(!(await pebbleAvailable()))`; missing under CI throws (CI never skips). */
export async function pebbleAvailable(): Promise<boolean> {
  const missing = [pebbleBin, challtestsrvBin, caddyBin].filter((b) => !existsSync(b));
  if (missing.length === 0) return true;
  const fix = 'run ../shared/ci/setup-machine.sh pebble caddy';
  if (isCi) throw new Error(`CI must not skip: ${missing.join(', ')} missing: ${fix}`);
  console.warn(`\n*** SKIPPING ACME suites: ${missing.join(', ')} missing (${fix}) ***\n`);
  return false;
}

interface Daemon {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function startDaemon(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
): Daemon {
  const child = spawn(bin, args, {
    env: { ...process.env, ...env },
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (c: Buffer) => {
    // pebble's log is read by tests (which names were ordered); keep a generous tail.
    output = (output + c.toString('utf8')).slice(-2_000_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));
  return {
    child,
    output: () => output,
    async stop() {
      if (!running) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  daemon: Daemon,
  deadlineMs = 15_000,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (daemon.child.exitCode !== null)
      throw new Error(`${what} exited:\n${daemon.output().slice(-3000)}`);
    if (Date.now() > end)
      throw new Error(
        `${what} did not come up within ${deadlineMs} ms:\n${daemon.output().slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

function postJson(url: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export interface ChallTestSrv {
  /** `<host>:<port>`, for a DnsResolver's servers. */
  dnsAddress: string;
  setTxt(host: string, value: string): Promise<void>;
  clearTxt(host: string): Promise<void>;
  setCname(host: string, target: string): Promise<void>;
  clearCname(host: string): Promise<void>;
  addA(host: string, addresses: string[]): Promise<void>;
  clearA(host: string): Promise<void>;
  /** Kills the server (DNS stops answering); start() brings it back on the same ports, empty. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

const fqdn = (host: string) => (host.endsWith('.') ? host : `${host}.`);

/**
 * pebble-challtestsrv on free ports: DNS only (no challenge responders). On loopback unless
 * `host` names another address of this machine (containers cannot reach the host's loopback).
 */
export async function startChallTestSrv(options: { host?: string } = {}): Promise<ChallTestSrv> {
  const host = options.host ?? '127.0.0.1';
  const dnsPort = await freePort();
  const mgmtPort = await freePort();
  const mgmt = `http://${host}:${mgmtPort}`;
  let daemon: Daemon | null = null;
  const start = async () => {
    // Idempotent: a second start while running would orphan the first process.
    if (daemon !== null && daemon.child.exitCode === null && daemon.child.signalCode === null)
      return;
    daemon = startDaemon(challtestsrvBin, [
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
      '-dns01',
      `${host}:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `${host}:${mgmtPort}`,
    ]);
    await waitFor('pebble-challtestsrv', () => canConnect(host, mgmtPort, 200), daemon);
  };
  await start();
  const call = async (path: string, body: unknown) => {
    const status = await postJson(`${mgmt}${path}`, body);
    if (status !== 200) throw new Error(`pebble-challtestsrv ${path} answered ${status}`);
  };
  return {
    dnsAddress: `${host}:${dnsPort}`,
    setTxt: (host, value) => call('/set-txt', { host: fqdn(host), value }),
    clearTxt: (host) => call('/clear-txt', { host: fqdn(host) }),
    setCname: (host, target) => call('/set-cname', { host: fqdn(host), target: fqdn(target) }),
    clearCname: (host) => call('/clear-cname', { host: fqdn(host) }),
    addA: (host, addresses) => call('/add-a', { host: fqdn(host), addresses }),
    clearA: (host) => call('/clear-a', { host: fqdn(host) }),
    stop: async () => {
      await daemon?.stop();
    },
    start,
  };
}

export interface TestPebble {
  directoryUrl: string;
  /** The self-signed certificate of pebble's own HTTPS, for Caddy's trusted_roots_pem_files. */
  certFile: string;
  /** pebble's log so far: every order names its identifiers. */
  log(): string;
  /** The root that signs pebble's certificates (new on every start), to verify served chains. */
  rootPem(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * pebble on free ports of `host` (loopback by default), validating HTTP-01 on `httpPort` and
 * TLS-ALPN-01 on `tlsPort` (a free port when absent), resolving through `dnsAddress`.
 */
export async function startPebble(options: {
  dnsAddress: string;
  httpPort: number;
  tlsPort?: number;
  host?: string;
  /** How long the certificates it issues are valid (pebble's default: about five years). */
  certificateValiditySeconds?: number;
}): Promise<TestPebble> {
  const host = options.host ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'sdo-pebble-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '30',
    '-subj',
    '/CN=localhost',
    '-addext',
    `subjectAltName=DNS:localhost,IP:127.0.0.1${host === '127.0.0.1' ? '' : `,IP:${host}`}`,
  ]);
  const port = await freePort();
  const mgmtPort = await freePort();
  const config = {
    pebble: {
      listenAddress: `${host}:${port}`,
      managementListenAddress: `${host}:${mgmtPort}`,
      certificate: certFile,
      privateKey: keyFile,
      httpPort: options.httpPort,
      tlsPort: options.tlsPort ?? (await freePort()),
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.certificateValiditySeconds
        ? { certificateValidityPeriod: options.certificateValiditySeconds }
        : {}),
    },
  };
  const configFile = join(dir, 'pebble.json');
  await writeFile(configFile, JSON.stringify(config));
  // NOSLEEP: no random validation delay; NONCEREJECT 0: no spurious badNonce retries.
  const daemon = startDaemon(pebbleBin, ['-config', configFile, '-dnsserver', options.dnsAddress], {
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
  });
  const directoryUrl = `https://${host}:${port}/dir`;
  const answers = () =>
    new Promise<boolean>((resolve) => {
      const req = https.get(directoryUrl, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
  await waitFor('pebble', answers, daemon);
  return {
    directoryUrl,
    certFile,
    log: daemon.output,
    rootPem: () =>
      new Promise<string>((resolve, reject) => {
        https
          .get(
            `https://${host}:${mgmtPort}/roots/0`,
            { rejectUnauthorized: false, timeout: 5000 },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (text += c));
              res.on('end', () =>
                res.statusCode === 200
                  ? resolve(text)
                  : reject(new Error(`pebble /roots/0 answered ${res.statusCode}`)),
              );
            },
          )
          .on('error', reject);
      }),
    async stop() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TlsCaddy {
  adminUrl: string;
  httpPort: number;
  httpsPort: number;
  /** `127.0.0.1:<httpsPort>`, for the edge router's tlsAddress. */
  tlsAddress: string;
  serverName: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A private Caddy with HTTP on `httpPort` (pebble validates HTTP-01 there), HTTPS on a free
 * port, and on-demand TLS from pebble gated by `askUrl`. State lives in a temp dir.
 */
export async function startTlsCaddy(options: {
  httpPort: number;
  /** Chosen beforehand when the control plane must know them before Caddy starts. */
  adminPort?: number;
  httpsPort?: number;
  askUrl: string;
  acmeCa: string;
  trustedRootsPemFiles: string[];
}): Promise<TlsCaddy> {
  const dir = await mkdtemp(join(tmpdir(), 'sdo-tls-caddy-'));
  const adminPort = options.adminPort ?? (await freePort());
  const httpsPort = options.httpsPort ?? (await freePort());
  const serverName = 'selfdevop';
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const config = caddyBaseConfig({
    adminListen: `127.0.0.1:${adminPort}`,
    httpListen: `127.0.0.1:${options.httpPort}`,
    httpsListen: `127.0.0.1:${httpsPort}`,
    serverName,
    storageRoot: join(dir, 'data'),
    onDemandTls: {
      askUrl: options.askUrl,
      acmeCa: options.acmeCa,
      trustedRootsPemFiles: options.trustedRootsPemFiles,
    },
  });
  const configFile = join(dir, 'caddy.json');
  await writeFile(configFile, JSON.stringify(config));
  const daemon = startDaemon(caddyBin, ['run', '--config', configFile], {
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'xdg-data'),
    XDG_CONFIG_HOME: join(dir, 'xdg-config'),
  });
  const stop = async () => {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'caddy',
      () =>
        new CaddyAdmin(adminUrl, { timeoutMs: 10_000, maxAttempts: 1 })
          .request('GET', '/config/')
          .then(
            (r) => r.status === 200,
            () => false,
          ),
      daemon,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    adminUrl,
    httpPort: options.httpPort,
    httpsPort,
    tlsAddress: `127.0.0.1:${httpsPort}`,
    serverName,
    log: daemon.output,
    stop,
  };
}
