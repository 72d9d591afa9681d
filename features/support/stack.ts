/**
 * The self-hosted stack as the acceptance specs drive it: installs made by
 * selfhost/install.sh in temporary directories, each its own compose project on its own
 * loopback ports, and the commands and HTTP calls a user would make against them.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { freePort } from '../../test/support/ports.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const selfhostDir = path.join(repoRoot, 'selfhost');
export const version = (
  JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
).version;

/** The locally built images (selfhost/build-images.sh); nothing is pulled. */
export const images = {
  app: `selfdevop/selfdevop:${version}`,
  postgres: 'selfdevop/postgres:15',
  caddy: 'selfdevop/caddy:2.11',
  prometheus: 'selfdevop/prometheus:2.42',
  alertmanager: 'selfdevop/alertmanager:0.25',
  /** The base of zero-config Node.js builds: a node builds from it offline. */
  nodeBuild: 'selfdevop/node-build:24',
};

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (bounded by timeoutMs); never throws on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd ?? repoRoot,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** Like run, but a non-zero exit is an error carrying the command's output. */
export async function mustRun(
  file: string,
  args: string[],
  options: Parameters<typeof run>[2] = {},
): Promise<RunResult> {
  const r = await run(file, args, options);
  if (r.code !== 0)
    throw new Error(`${file} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

export interface HttpResponse {
  status: number;
  text: string;
  json: unknown;
}

type RequestOptions = { body?: unknown; headers?: Record<string, string>; timeoutMs?: number };

/**
 * One HTTP request over node:http (it may set Host, which fetch may not). A GET whose
 * connection was reset before any response byte is sent once more, as the CLI does: the
 * stack's Caddy drops a few connections each time its config is replaced (ARCHITECTURE.md,
 * "What a reload costs"), and a real outage fails the second try as well.
 */
export async function request(
  port: number,
  method: string,
  urlPath: string,
  options: RequestOptions = {},
): Promise<HttpResponse> {
  try {
    return await requestOnce(port, method, urlPath, options);
  } catch (e) {
    if (
      (method !== 'GET' && method !== 'HEAD') ||
      (e as NodeJS.ErrnoException).code !== 'ECONNRESET'
    )
      throw e;
    await sleep(100);
    return requestOnce(port, method, urlPath, options);
  }
}

function requestOnce(
  port: number,
  method: string,
  urlPath: string,
  options: RequestOptions,
): Promise<HttpResponse> {
  const payload =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? options.body
        : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent: false,
        timeout: options.timeoutMs ?? 10_000,
        headers: {
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON: steps read .text
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One install: a directory, a compose project and its edge port on 127.0.0.1. */
export class Install {
  readonly dir: string;
  readonly project: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  /** The last install.sh run. */
  lastInstall: RunResult | null = null;

  constructor(options: { dir: string; project: string; httpPort: number; httpsPort: number }) {
    this.dir = options.dir;
    this.project = options.project;
    this.httpPort = options.httpPort;
    this.httpsPort = options.httpsPort;
  }

  static async create(label: string): Promise<Install> {
    const dir = await mkdtemp(path.join(os.tmpdir(), `sdo-acceptance-${label}-`));
    const project = `sdoacc${label}${randomBytes(3).toString('hex')}`;
    return new Install({ dir, project, httpPort: await freePort(), httpsPort: await freePort() });
  }

  /** Runs install.sh (from the repo, or the copy in the install's bin/) with the local images. */
  async install(
    options: { fromBin?: boolean; timeoutS?: number; images?: string; args?: string[] } = {},
  ): Promise<RunResult> {
    const script = options.fromBin
      ? path.join(this.dir, 'bin', 'install.sh')
      : path.join(selfhostDir, 'install.sh');
    const r = await run(
      'bash',
      [
        script,
        '--dir',
        this.dir,
        '--project',
        this.project,
        '--offline',
        '--bind',
        '127.0.0.1',
        '--http-port',
        String(this.httpPort),
        '--https-port',
        String(this.httpsPort),
        '--timeout',
        String(options.timeoutS ?? 90),
        ...(options.images ? ['--images', options.images] : []),
        ...(options.args ?? []),
      ],
      {
        env: {
          SELFDEVOP_IMAGE: images.app,
          POSTGRES_IMAGE: images.postgres,
          CADDY_IMAGE: images.caddy,
          PROMETHEUS_IMAGE: images.prometheus,
          ALERTMANAGER_IMAGE: images.alertmanager,
        },
      },
    );
    this.lastInstall = r;
    return r;
  }

  compose(args: string[], timeoutMs = 180_000): Promise<RunResult> {
    return run('docker', ['compose', ...args], { cwd: this.dir, timeoutMs });
  }

  script(name: string, args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return run('bash', [path.join(selfhostDir, name), ...args], { timeoutMs });
  }

  async env(): Promise<Record<string, string>> {
    const text = await readFile(path.join(this.dir, '.env'), 'utf8');
    return Object.fromEntries(
      text
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }

  keyFile(): Promise<string> {
    return readFile(path.join(this.dir, 'secrets', 'encryption.key'), 'utf8');
  }

  /** service → "state/health" for every service of the stack (migrate: "exited/0"). */
  async serviceStates(): Promise<Record<string, string>> {
    const ps = await mustRun('docker', [
      'ps',
      '-a',
      '--filter',
      `label=com.docker.compose.project=${this.project}`,
      '--format',
      '{{.ID}}',
    ]);
    const states: Record<string, string> = {};
    for (const id of ps.stdout.split('\n').filter(Boolean)) {
      const r = await mustRun('docker', [
        'inspect',
        '-f',
        '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.ExitCode}}{{end}}',
        id,
      ]);
      const [service, state, health] = r.stdout.trim().split(' ');
      if (service) states[service] = `${state}/${health}`;
    }
    return states;
  }

  /** Waits until postgres, api, worker, caddy, prometheus and alertmanager are healthy and migrate exited 0. */
  async waitHealthy(deadlineMs = 60_000): Promise<Record<string, string>> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const states = await this.serviceStates();
      if (isHealthy(states)) return states;
      if (Date.now() > end)
        throw new Error(`not healthy after ${deadlineMs} ms: ${JSON.stringify(states)}`);
      await sleep(500);
    }
  }

  /**
   * SQL through psql in the postgres container (local socket), as its superuser: row-level
   * security is forced on tenant tables, so their owner `selfdevop` sees no org's rows.
   */
  async sql(query: string): Promise<string> {
    const r = await mustRun(
      'docker',
      [
        'compose',
        'exec',
        '-T',
        'postgres',
        'psql',
        '-X',
        '-q',
        '-A',
        '-t',
        '-v',
        'ON_ERROR_STOP=1',
        '-h',
        '/var/run/postgresql',
        '-U',
        'postgres',
        '-d',
        'selfdevop',
        '-c',
        query,
      ],
      { cwd: this.dir },
    );
    return r.stdout.trim();
  }

  /** Every user, org, service and release id, and each release's status: what must survive. */
  async fingerprint(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, q] of Object.entries({
      users: `select string_agg(id || ':' || email, ',' order by id) from users`,
      orgs: `select string_agg(id, ',' order by id) from orgs`,
      services: `select string_agg(id || ':' || name, ',' order by id) from services`,
      releases: `select string_agg(id || ':' || status, ',' order by id) from releases`,
      apiKeys: `select string_agg(id, ',' order by id) from api_keys`,
      secrets: `select string_agg(id, ',' order by id) from secrets`,
    })) {
      out[name] = await this.sql(q);
    }
    return out;
  }

  api(
    method: string,
    urlPath: string,
    options: { body?: unknown; token?: string } = {},
  ): Promise<HttpResponse> {
    return request(this.httpPort, method, urlPath, {
      body: options.body,
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    });
  }

  viaEdge(host: string, urlPath = '/version'): Promise<HttpResponse> {
    return request(this.httpPort, 'GET', urlPath, { headers: { host } });
  }

  /** compose down -v; then, by the project's label, whatever that left (e.g. when .env is gone). */
  async destroy(): Promise<void> {
    await this.compose(['down', '-v', '--remove-orphans', '--timeout', '5']);
    const label = `label=com.docker.compose.project=${this.project}`;
    const left = async (kind: string[]) =>
      (await run('docker', [...kind, '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
    const containers = await left(['ps', '-a']);
    if (containers.length > 0) await run('docker', ['rm', '-f', '-v', ...containers]);
    const volumes = await left(['volume', 'ls']);
    if (volumes.length > 0) await run('docker', ['volume', 'rm', '-f', ...volumes]);
    const networks = await left(['network', 'ls']);
    if (networks.length > 0) await run('docker', ['network', 'rm', ...networks]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function isHealthy(states: Record<string, string>): boolean {
  return (
    ['postgres', 'api', 'worker', 'caddy', 'prometheus', 'alertmanager'].every(
      (s) => states[s] === 'running/healthy',
    ) && states.migrate === 'exited/0'
  );
}

/** The Docker bridge's gateway: app containers publish there, reachable from the compose network. */
export async function bridgeGateway(): Promise<string> {
  const r = await mustRun('docker', [
    'network',
    'inspect',
    'bridge',
    '-f',
    '{{range .IPAM.Config}}{{.Gateway}}{{end}}',
  ]);
  return r.stdout.trim() || '172.17.0.1';
}
