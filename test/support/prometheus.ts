import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';

const run = promisify(execFile);

export const prometheusBin = '/usr/bin/prometheus';
export const promtoolBin = '/usr/bin/promtool';
export const alertmanagerBin = '/usr/bin/prometheus-alertmanager';

export interface TestPrometheus {
  url: string;
  dir: string;
  /** Asks Prometheus to read its config and rule files again. */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url} exited: ${log()}`);
    const ok = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready in 30 s: ${log()}`);
}

function stopper(child: ChildProcess, dir: string) {
  return async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
}

/**
 * A private Prometheus on a free loopback port, state in a temp dir. `openMetrics` is
 * backfilled first (promtool tsdb create-blocks-from openmetrics), so a query over the past
 * finds exactly those samples; `config` is its prometheus.yml (scrape jobs, rule files).
 */
export async function startPrometheus(
  options: { openMetrics?: string; config?: string; files?: Record<string, string> } = {},
): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'sdo-prom-'));
  const data = join(dir, 'data');
  for (const [name, text] of Object.entries(options.files ?? {}))
    await writeFile(join(dir, name), text);
  if (options.openMetrics !== undefined) {
    const file = join(dir, 'backfill.om');
    await writeFile(file, options.openMetrics);
    await run(promtoolBin, ['tsdb', 'create-blocks-from', 'openmetrics', file, data], {
      timeout: 60_000,
    });
  }
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, options.config ?? 'global: {scrape_interval: 1m}\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child = spawn(
    prometheusBin,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${data}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      // The backfilled blocks may be older than the default retention window's start.
      '--storage.tsdb.retention.time=30d',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  child.stderr?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const stop = stopper(child, dir);
  try {
    await waitReady(url, child, () => log);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    dir,
    reload: async () => {
      const r = await fetch(`${url}/-/reload`, { method: 'POST' });
      if (!r.ok) throw new Error(`reload: ${r.status} ${await r.text()}`);
    },
    stop,
  };
}

export interface TestAlertmanager {
  url: string;
  stop(): Promise<void>;
}

/** A private Alertmanager (no cluster) on a free loopback port, with `config` as its alertmanager.yml. */
export async function startAlertmanager(config: string): Promise<TestAlertmanager> {
  const dir = await mkdtemp(join(tmpdir(), 'sdo-am-'));
  const configFile = join(dir, 'alertmanager.yml');
  await writeFile(configFile, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let log = '';
  const child = spawn(
    alertmanagerBin,
    [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  child.stderr?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const stop = stopper(child, dir);
  try {
    await waitReady(url, child, () => log);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}
