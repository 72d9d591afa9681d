import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { ContainerSpec, DockerTarget } from '../../core/ports.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The machine's Docker Engine (override with TEST_DOCKER_HOST). */
export const dockerTarget: DockerTarget = {
  dockerHost: process.env.TEST_DOCKER_HOST ?? 'unix:///var/run/docker.sock',
};

/** Targets whose engine never answers: a closed loopback port and a socket that does not exist. */
export const unreachableTargets: DockerTarget[] = [
  { dockerHost: 'tcp://127.0.0.1:1' },
  { dockerHost: 'unix:///nonexistent/selfdevop/docker.sock' },
];

/** The offline images scripts/build-test-images.sh makes (test-images/README.md says what each does). */
export const testImages = {
  app: 'selfdevop-test/app:v1',
  appV2: 'selfdevop-test/app:v2',
  unhealthy: 'selfdevop-test/app:unhealthy',
  slow: 'selfdevop-test/app:slow',
  crash: 'selfdevop-test/app:crash',
  migrateOk: 'selfdevop-test/app:migrate-ok',
  migrateFail: 'selfdevop-test/app:migrate-fail',
  ws: 'selfdevop-test/ws:v1',
  wsV2: 'selfdevop-test/ws:v2',
  /** app:v1's contract on node:http, keeping connections open (bench:scale's app under load). */
  appKa: 'selfdevop-test/app-ka:v1',
  appKaV2: 'selfdevop-test/app-ka:v2',
  /** app:v1 with /bin/migrate-flood: 100,000 lines, then one 30 MB line. */
  flood: 'selfdevop-test/flood:v1',
  /** Socket.IO with the Redis adapter on REDIS_URL (ensureSocketioImage builds it alone). */
  socketio: 'selfdevop-test/socketio:v1',
  /** Never built, and not pullable offline. */
  missing: 'selfdevop-test/missing:never-built',
} as const;

export type TestImages = typeof testImages;

/** The label every container a test makes carries, so afterAll can find and remove them. */
export const testLabelKey = 'selfdevop.test';

let built: Promise<void> | undefined;

/**
 * Builds the test images once per test process; about a second when they are up to date,
 * and safe when several files call it at once (the script takes a lock).
 */
export function ensureTestImages(): Promise<void> {
  built ??= promisify(execFile)('bash', [join(repoRoot, 'scripts/build-test-images.sh')], {
    timeout: 170_000,
  }).then(
    () => undefined,
    (e: { stderr?: string; message: string }) => {
      throw new Error(`scripts/build-test-images.sh failed: ${e.stderr || e.message}`);
    },
  );
  return built;
}

let socketioBuilt: Promise<void> | undefined;

/**
 * Builds only `selfdevop-test/socketio:v1` (`--only socketio`), once per test process: a
 * few seconds when up to date, and it never rebuilds images other suites are running.
 */
export function ensureSocketioImage(): Promise<void> {
  socketioBuilt ??= promisify(execFile)(
    'bash',
    [join(repoRoot, 'scripts/build-test-images.sh'), '--only', 'socketio'],
    { timeout: 300_000 },
  ).then(
    () => undefined,
    (e: { stderr?: string; message: string }) => {
      throw new Error(
        `scripts/build-test-images.sh --only socketio failed: ${e.stderr || e.message}`,
      );
    },
  );
  return socketioBuilt;
}

let appKaBuilt: Promise<void> | undefined;

/**
 * Builds only `selfdevop-test/app-ka:v1` and `:v2` (`--only app-ka`), once per test process,
 * so a suite that needs just them never rebuilds the images other suites are running.
 */
export function ensureAppKaImage(): Promise<void> {
  appKaBuilt ??= promisify(execFile)(
    'bash',
    [join(repoRoot, 'scripts/build-test-images.sh'), '--only', 'app-ka'],
    { timeout: 120_000 },
  ).then(
    () => undefined,
    (e: { stderr?: string; message: string }) => {
      throw new Error(
        `scripts/build-test-images.sh --only app-ka failed: ${e.stderr || e.message}`,
      );
    },
  );
  return appKaBuilt;
}

let dataBuilt: Promise<void> | undefined;

/**
 * Builds the data services' images (selfdevop/redis:7, mariadb:10.11, postgres:15) once per
 * test process: a few seconds when up to date, a few minutes from nothing (debootstrap and
 * Debian's packages; `.ci/run` builds them before the tests).
 */
export function ensureDataImages(): Promise<void> {
  dataBuilt ??= promisify(execFile)(
    'bash',
    [join(repoRoot, 'selfhost/build-images.sh'), '--data'],
    {
      timeout: 900_000,
    },
  ).then(
    () => undefined,
    (e: { stderr?: string; message: string }) => {
      throw new Error(`selfhost/build-images.sh --data failed: ${e.stderr || e.message}`);
    },
  );
  return dataBuilt;
}

/**
 * A label and name prefix unique to one test file and run, so files running in parallel
 * never touch each other's containers.
 * @example const run = testRun(import.meta.url); afterAll(() => removeContainersByLabel(run.labels));
 */
export function testRun(fileUrl: string): {
  id: string;
  labels: Record<string, string>;
  name: (what: string) => string;
} {
  const file = basename(fileURLToPath(fileUrl))
    .replace(/\.test\.ts$/, '')
    .replace(/[^a-z0-9]+/gi, '-')
    .toLowerCase();
  const id = `${file}-${randomBytes(4).toString('hex')}`;
  let n = 0;
  return {
    id,
    labels: { [testLabelKey]: id },
    name: (what) => `sdo-test-${id}-${what}-${++n}`,
  };
}

/**
 * Runs a one-off on the test engine with `input` as its whole stdin and reads its stdout to
 * the end: its exit code, stdout and the tail of its stderr.
 */
export async function runPipedToEnd(
  runtime: DockerRuntime,
  spec: ContainerSpec,
  input: string,
  timeoutMs = 60_000,
): Promise<{ exitCode: number | null; out: string; err: string }> {
  const piped = await runtime.runPiped!(dockerTarget, spec, {
    timeoutMs,
    stdin: (async function* () {
      yield new TextEncoder().encode(input);
    })(),
  });
  let out = '';
  const decoder = new TextDecoder();
  for await (const chunk of piped.stdout) out += decoder.decode(chunk, { stream: true });
  out += decoder.decode();
  const result = await piped.result;
  return { exitCode: result.exitCode, out, err: result.output };
}

/** Force-removes every container carrying all these labels on the test engine. */
export async function removeContainersByLabel(
  labels: Record<string, string>,
  target: DockerTarget = dockerTarget,
): Promise<number> {
  const runtime = new DockerRuntime();
  const containers = await runtime.list(target, labels);
  await Promise.all(containers.map((c) => runtime.remove(target, c.id)));
  return containers.length;
}

/**
 * Removes the images built with all these labels (a build test's `<service>:<sha>` tags),
 * so runs do not pile images up on the shared engine; layers other images use stay.
 */
export async function removeImagesByLabel(labels: Record<string, string>): Promise<void> {
  const { execFile } = await import('node:child_process');
  const run = (args: string[]) =>
    new Promise<string>((resolve) =>
      execFile('docker', args, { timeout: 60_000 }, (_e, stdout) => resolve(String(stdout ?? ''))),
    );
  const filters = Object.entries(labels).flatMap(([k, v]) => ['--filter', `label=${k}=${v}`]);
  const ids = (await run(['image', 'ls', '-q', ...filters])).split('\n').filter(Boolean);
  if (ids.length > 0) await run(['image', 'rm', '-f', ...new Set(ids)]);
}

/** A loopback HTTP GET; null when nothing accepts the connection. */
export function httpGet(
  hostPort: string,
  path: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string } | null> {
  const [host, port] = splitHostPort(hostPort);
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(new Error(`GET http://${hostPort}${path} timed out after ${timeoutMs} ms`)),
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      // A container's port can accept and then reset while its server is still starting.
      if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EPIPE') resolve(null);
      else reject(e);
    });
  });
}

function splitHostPort(hostPort: string): [string, number] {
  const i = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1'), Number(hostPort.slice(i + 1))];
}

/** Polls `get` until it answers `status`, bounded by deadlineMs; returns the last answer. */
export async function waitForStatus<T extends { status: number } | null>(
  get: () => Promise<T>,
  status: number,
  deadlineMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last = await get();
  while (last?.status !== status && Date.now() < end) {
    await new Promise((r) => setTimeout(r, intervalMs));
    last = await get();
  }
  return last;
}
