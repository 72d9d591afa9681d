import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaddyAdmin } from '../../adapters/edge/caddy-admin.ts';
import { caddyBaseConfig } from '../../core/edge/caddy-route.ts';
import { freePort } from './ports.ts';

export const caddyBin = process.env.CADDY_BIN ?? '/usr/local/bin/caddy';

export interface TestCaddy {
  adminUrl: string;
  /** The edge adapter's admin transport, for tests that read or load Caddy config. */
  admin: CaddyAdmin;
  /** Plain-HTTP port of the `selfdevop` server, on 127.0.0.1. */
  httpPort: number;
  serverName: string;
  /** Caddy's process id (bench:scale reads its CPU time from /proc). */
  pid: number | undefined;
  /** Caddy's stderr so far (its own log and the access log), the newest 256 KiB. */
  stderr(): string;
  /**
   * Caddy's error-level log lines since the last call (at most the newest 2,000), kept apart
   * from the access log, which under load rolls them out of `stderr()` within a second.
   */
  takeErrors(): string[];
  /** Loads the base config again: no routes, as just started. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a private Caddy (admin and HTTP on free 127.0.0.1 ports, state in a temp dir)
 * and waits for its admin API. One per test file; stop() kills it and removes the dir.
 */
export async function startCaddy(
  options: { httpPort?: number; serverName?: string } = {},
): Promise<TestCaddy> {
  const dir = await mkdtemp(join(tmpdir(), 'sdo-caddy-'));
  const adminPort = await freePort();
  const httpPort = options.httpPort ?? (await freePort());
  const serverName = options.serverName ?? 'selfdevop';
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const admin = new CaddyAdmin(adminUrl, { timeoutMs: 10_000 });
  // One attempt per request: start-up polls until the admin API answers anyway.
  const probe = new CaddyAdmin(adminUrl, { timeoutMs: 10_000, maxAttempts: 1 });
  const config = caddyBaseConfig({
    adminListen: `127.0.0.1:${adminPort}`,
    httpListen: `127.0.0.1:${httpPort}`,
    serverName,
    storageRoot: join(dir, 'data'),
  });
  const configFile = join(dir, 'caddy.json');
  await writeFile(configFile, JSON.stringify(config));

  // HOME and XDG dirs point into the temp dir so autosave.json and locks never touch the
  // machine's own Caddy state.
  const child = spawn(caddyBin, ['run', '--config', configFile], {
    env: {
      ...process.env,
      HOME: dir,
      XDG_DATA_HOME: join(dir, 'xdg-data'),
      XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let partial = '';
  let errors: string[] = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    stderr = (stderr + c).slice(-256 * 1024);
    const lines = (partial + c).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.includes('"level":"error"')) errors.push(line);
    if (errors.length > 2000) errors = errors.slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));

  const stop = async (): Promise<void> => {
    if (running) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (!running) {
      await stop();
      throw new Error(`caddy exited before its admin API answered:\n${stderr.slice(-4000)}`);
    }
    const ok = await probe.request('GET', '/config/').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `caddy admin API did not answer at ${adminUrl} within 15 s:\n${stderr.slice(-4000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    adminUrl,
    admin,
    httpPort,
    serverName,
    pid: child.pid,
    stderr: () => stderr,
    takeErrors: () => errors.splice(0),
    reset: () => admin.load(config),
    stop,
  };
}
