/**
 * `npm run bench:data` (issue 15): a MariaDB data service's backup and its restore drill on
 * the self-hosted control plane, for real (its workers, the local Docker Engine, the local
 * object store). Rows of ~200 bytes: 100,000 by default, `--rows 1000000` for the issue's
 * ~200 MB. Measured in one run of `--rounds` rounds (5 by default), each a raw dump and a
 * backup (their order alternating) and the backup's drill; each ratio goal takes the median
 * of the rounds' ratios:
 *
 * 1. backupVsRawDumpRatio: the backup (one one-off that counts, then `mariadb-dump | gzip -6`
 *    on the node; AES-256-GCM, SHA-256 and the store in the control plane; the manifest) ÷
 *    `mariadb-dump --single-transaction | gzip | wc -c` of the same database in a one-off on
 *    the same network, in the same run.
 * 2. backupMemoryMb: peak RSS of this process (the control plane runs in it, with the install
 *    runtime of the worker that takes backups: bench/support/install-runtime.ts) during the
 *    backup, above its RSS just before; the largest of the rounds.
 * 3. drillRtoVsBackupRatio: the drill's RTO (restored into a container with no network and
 *    checked) ÷ the backup's time; `drill.phases` says where it went (manifest, SHA-256 pass,
 *    container start, server ready, restore, counts, teardown). A drill that failed in any
 *    round fails the goal.
 *    After the rounds, the last round's backup is restored into a new data service through
 *    the API, as a user would (detail `restoreToNew`, no goal): the restore's own time (the
 *    worker's `restoreMs`, over two connections like the drill's), the time from the request
 *    to its end (the new server's start included), and the rows it holds after.
 * 4. crossReplicaBroadcast: a Socket.IO app of 3 sticky replicas linked to one Redis data
 *    service, behind a real Caddy: every broadcast from a client on one replica reaches the
 *    clients on every replica, over WebSocket and long-polling (bench/support/cross-replica.ts).
 *
 * BENCH_ONLY=backup|socketio runs one part; only the parts that ran are judged. Prints one
 * JSON object last. Loopback only; every loop is bounded; the data services' containers,
 * volumes and network, Caddy and the database are removed at the end, also on failure.
 */
import { execFile } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { DockerRuntime } from '../adapters/runtime/docker.ts';
import { handleDataServiceWork } from '../core/data-services/work.ts';
import { startSelfhostApi } from '../test/support/api.ts';
import { startCaddy } from '../test/support/caddy.ts';
import {
  dockerTarget,
  ensureDataImages,
  ensureSocketioImage,
  removeContainersByLabel,
  testImages,
} from '../test/support/docker.ts';
import type { Requester } from '../test/support/http.ts';
import { measureCrossReplicaBroadcast } from './support/cross-replica.ts';
import { currentInstallRuntime, relaunchWithInstallRuntime } from './support/install-runtime.ts';
import { median } from './support/stats.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '5' },
  },
});
const rows = Number(values.rows);
if (!Number.isInteger(rows) || rows < 1 || rows > 5_000_000)
  throw new Error('--rows must be an integer from 1 to 5,000,000');
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 9 || rounds % 2 === 0)
  throw new Error('--rounds must be an odd integer from 1 to 9 (the median is one round)');
const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== 'backup' && only !== 'socketio')
  throw new Error('BENCH_ONLY must be backup or socketio');
const log = (line: string) => process.stderr.write(`bench:data ${line}\n`);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Goal = { goal: string; got: number | boolean | null; met: boolean };
type Part = { detail: Record<string, unknown>; goals: Record<string, Goal> };

async function main(): Promise<void> {
  await Promise.all([ensureDataImages(), only === 'backup' ? null : ensureSocketioImage()]);
  const caddy = only === 'backup' ? null : await startCaddy();
  const api = await startSelfhostApi({
    workers: true,
    release: { dataReadyAttempts: 120 },
    ...(caddy ? { caddyAdminUrl: caddy.adminUrl, caddyServer: caddy.serverName } : {}),
  });
  let orgId = '';
  const volumes: string[] = [];
  const networks = new Set<string>();
  const remember = (ds: { volume: string; network: string }) => {
    volumes.push(ds.volume);
    networks.add(ds.network);
  };
  try {
    const req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'bench-data@example.com', password: 'correct horse battery' },
    });
    const token = s.body.token as string;
    orgId = s.body.org.id;
    const h = { token, headers: { 'x-org-id': orgId } };
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'bench' } })).body
      .id;
    await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const parts: Part[] = [];
    if (only !== 'socketio') parts.push(await backupPart(api, orgId, projectId, h, remember));
    if (caddy) {
      log('Socket.IO across 3 replicas through a Redis link');
      const r = await measureCrossReplicaBroadcast({
        req,
        auth: h,
        projectId,
        edgePort: caddy.httpPort,
        image: testImages.socketio,
        onCreated: remember,
        log,
      });
      parts.push({
        detail: { socketio: r.detail },
        goals: {
          crossReplicaBroadcast: {
            goal: 'true',
            got: r.crossReplicaBroadcast,
            met: r.crossReplicaBroadcast,
          },
        },
      });
    }
    console.log(
      JSON.stringify({
        bench: 'data',
        ...Object.assign({}, ...parts.map((p) => p.detail)),
        host: { cpus: (await import('node:os')).cpus().length },
        // The control plane (this process) ran as an install runs the worker, or did not.
        runtime: currentInstallRuntime() ?? 'node defaults',
        goals: Object.assign({}, ...parts.map((p) => p.goals)),
      }),
    );
  } finally {
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    await api.close();
    await caddy?.stop();
    for (const v of volumes) await run('docker', ['volume', 'rm', '-f', v]).catch(() => undefined);
    for (const n of networks) await run('docker', ['network', 'rm', n]).catch(() => undefined);
  }
}

/** Parts 1-3: a MariaDB backup against mariadb-dump | gzip, its memory, and its drill's RTO. */
async function backupPart(
  api: Awaited<ReturnType<typeof startSelfhostApi>>,
  orgId: string,
  projectId: string,
  h: { token: string; headers: Record<string, string> },
  remember: (ds: { volume: string; network: string }) => void,
): Promise<Part> {
  const req: Requester = api.request;
  const runtime = new DockerRuntime();
  const created = await req('POST', '/api/data-services', {
    ...h,
    body: { projectId, name: 'bench', engine: 'mariadb' },
  });
  let ds = created.body;
  remember(ds);
  for (let i = 0; i < 240 && ds.status === 'provisioning'; i++) {
    await sleep(500);
    ds = (await req('GET', `/api/data-services/${ds.id}`, h)).body;
  }
  if (ds.status !== 'ready') throw new Error(`the data service is ${ds.status}: ${ds.error}`);
  const passwordOf = async (host: string) =>
    (
      await run('docker', ['inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', host])
    ).stdout
      .split('\n')
      .find((l) => l.startsWith('MARIADB_PASSWORD='))!
      .slice('MARIADB_PASSWORD='.length);
  const password = await passwordOf(ds.host);
  const client = (sh: string, timeoutMs = 1_800_000, pw = password) =>
    runtime.runOnce(
      dockerTarget,
      {
        name: `${ds.host}-bench-client`,
        image: 'selfdevop/mariadb:10.11',
        env: { MYSQL_PWD: pw },
        labels: { 'selfdevop.org': orgId },
        entrypoint: ['sh', '-ec', sh],
        restartPolicy: 'no',
        network: ds.network,
      },
      timeoutMs,
    );
  log(`filling ${rows} rows`);
  const fill = await client(
    `mariadb -h ${ds.host} -u app app -e "create table t (id int primary key, a varchar(100), b varchar(100)); insert into t select seq, md5(seq), repeat(char(65 + seq % 26), 100) from seq_1_to_${rows}"`,
  );
  if (fill.exitCode !== 0) throw new Error(`filling failed: ${fill.output}`);

  const rawDump = async () => {
    const t0 = performance.now();
    const raw = await client(
      `mariadb-dump -h ${ds.host} -u app --single-transaction app | gzip | wc -c`,
    );
    const ms = performance.now() - t0;
    if (raw.exitCode !== 0) throw new Error(`raw dump failed: ${raw.output}`);
    return { ms: Math.round(ms), gzipBytes: Number(raw.output.trim().split('\n').pop()) };
  };
  const handle = handleDataServiceWork(api.system.release);
  const backupAndDrill = async () => {
    const before = new Set(
      (
        (await req('GET', `/api/data-services/${ds.id}/backups`, h)).body.items as { id: string }[]
      ).map((b) => b.id),
    );
    global.gc?.();
    // Where the peak sits (V8 heap, or Buffers' external memory), for the detail below.
    const idle = process.memoryUsage();
    let peakRss = idle.rss;
    let atPeak = idle;
    // memoryUsage.rss() is one read of /proc; the heap's breakdown only at a new peak, so the
    // sampling (100 a second) adds little to the control plane's CPU it also reports.
    const sampler = setInterval(() => {
      if (process.memoryUsage.rss() <= peakRss) return;
      const m = process.memoryUsage();
      if (m.rss > peakRss) [peakRss, atPeak] = [m.rss, m];
    }, 10);
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    await handle({
      id: 'bench',
      attempt: 1,
      payload: { orgId, dataServiceId: ds.id, op: 'backup', trigger: 'schedule' },
    });
    const ms = performance.now() - t0;
    const used = process.cpuUsage(cpu);
    clearInterval(sampler);
    // The drill runs before anything else is measured: it would load the two cores.
    let backup;
    for (let i = 0; i < 1800; i++) {
      backup = (
        (await req('GET', `/api/data-services/${ds.id}/backups`, h)).body.items as {
          id: string;
          status: string;
          drillStatus: string | null;
          [k: string]: unknown;
        }[]
      ).find((b) => !before.has(b.id));
      if (backup?.status === 'failed' || (backup?.drillStatus && backup.drillStatus !== 'running'))
        break;
      await sleep(1000);
    }
    if (backup?.status !== 'completed') throw new Error(`backup failed: ${backup?.error}`);
    // Where the drill's time went (the worker records it with drill.passed / drill.failed).
    const drillEvents = (
      await req(
        'GET',
        `/api/audit-events?action=drill.${backup.drillStatus === 'passed' ? 'passed' : 'failed'}&targetId=${ds.id}`,
        h,
      )
    ).body.items as { data?: { backupId?: string; phases?: unknown } }[] | undefined;
    const rto = backup.drillRtoMs as number | null;
    return {
      backup: {
        id: backup.id,
        ms: Math.round(ms),
        rawBytes: backup.rawBytes as number,
        storedBytes: backup.storedBytes as number,
        mbPerSecond: round((backup.rawBytes as number) / 1048576 / (ms / 1000)),
        tables: backup.tables,
        // The control plane's own CPU in it: encryption, hashing, the store, its GC.
        controlPlaneCpuMs: Math.round((used.user + used.system) / 1000),
      },
      drill: {
        status: backup.drillStatus,
        error: backup.drillError,
        rtoMs: rto,
        phases: drillEvents?.find((e) => e.data?.backupId === backup.id)?.data?.phases ?? null,
      },
      memory: {
        idleRssMb: round(idle.rss / 1048576, 1),
        growthMb: round((peakRss - idle.rss) / 1048576, 1),
        // At the RSS peak, above idle: the V8 heap (used, committed) and the memory outside it
        // that Buffers hold (none near the growth: memory freed earlier that malloc kept).
        atPeakMb: {
          heapUsed: round((atPeak.heapUsed - idle.heapUsed) / 1048576, 1),
          heapTotal: round((atPeak.heapTotal - idle.heapTotal) / 1048576, 1),
          external: round((atPeak.external - idle.external) / 1048576, 1),
          arrayBuffers: round((atPeak.arrayBuffers - idle.arrayBuffers) / 1048576, 1),
        },
      },
    };
  };

  /** Restores `backupId` into a new data service through the API; its rows counted after. */
  const restoreIntoNew = async (backupId: string) => {
    log("restoring the last round's backup into a new data service");
    const t0 = performance.now();
    const res = await req('POST', `/api/data-services/${ds.id}/restore`, {
      ...h,
      body: { backupId, target: 'new', name: 'bench-restored' },
    });
    if (res.status !== 202) throw new Error(`restore refused: ${res.status} ${res.text}`);
    const copy = res.body.dataService as { id: string; host: string; network: string };
    remember({
      volume: (res.body.dataService as { volume: string }).volume,
      network: copy.network,
    });
    let done: { action: string; data: { restoreMs?: number; reason?: string } } | undefined;
    for (let i = 0; i < 1800 && !done; i++) {
      await sleep(500);
      done = (
        await req('GET', `/api/audit-events?targetId=${copy.id}&limit=50`, h)
      ).body.items.find((e: { action: string }) =>
        ['data_service.restored', 'data_service.restore_failed'].includes(e.action),
      );
    }
    const totalMs = Math.round(performance.now() - t0);
    if (done?.action !== 'data_service.restored')
      throw new Error(
        `the restore into a new data service failed: ${done?.data.reason ?? 'no end in 15 min'}`,
      );
    const counted = await client(
      `mariadb -h ${copy.host} -u app app -N -B -e "select count(*) from t"`,
      600_000,
      await passwordOf(copy.host),
    );
    if (counted.exitCode !== 0)
      throw new Error(`counting the restored rows failed: ${counted.output}`);
    const restoredRows = Number(counted.output.trim().split('\n').pop());
    if (restoredRows !== rows)
      throw new Error(`the restore holds ${restoredRows} rows, not ${rows}`);
    return { restoreMs: done.data.restoreMs ?? null, totalMs, rows: restoredRows };
  };

  // One backup and one raw dump per round, their order alternating (a round's first run
  // meets a server still settling from the fill or the last drill); each ratio is the
  // round's own, and each ratio goal takes their median. One pair alone moved the ratio by
  // ±0.15 between runs of the same code on these two shared cores, and a round's backup
  // ratio read 0.99-1.39 within runs: five rounds, not three, so that two slow rounds do
  // not decide the median.
  type Round = { raw: Awaited<ReturnType<typeof rawDump>> } & Awaited<
    ReturnType<typeof backupAndDrill>
  > & { ratio: number; drillRatio: number | null };
  const list: Round[] = [];
  for (let i = 0; i < rounds; i++) {
    const rawFirst = i % 2 === 0;
    log(
      `round ${i + 1} of ${rounds}: ${rawFirst ? 'raw dump, then backup' : 'backup, then raw dump'}`,
    );
    let raw = rawFirst ? await rawDump() : null;
    const taken = await backupAndDrill();
    raw ??= await rawDump();
    const rto = taken.drill.rtoMs;
    list.push({
      raw,
      ...taken,
      ratio: round(taken.backup.ms / raw.ms),
      drillRatio:
        taken.drill.status === 'passed' && rto !== null ? round(rto / taken.backup.ms) : null,
    });
  }
  const ratio = median(list.map((r) => r.ratio));
  const drillRatios = list.map((r) => r.drillRatio);
  // A drill that failed fails the goal, whatever the others did.
  const drillRatio = drillRatios.includes(null) ? null : median(drillRatios as number[]);
  const memoryMb = Math.max(...list.map((r) => r.memory.growthMb));
  const chosen = list.find((r) => r.ratio === ratio)!;
  // The last round's: retention keeps one scheduled backup a day, the newest.
  const restoreToNew = await restoreIntoNew(list.at(-1)!.backup.id);
  return {
    detail: {
      rows,
      rounds: list.map((r) => ({
        rawMs: r.raw.ms,
        backupMs: r.backup.ms,
        ratio: r.ratio,
        drillRtoMs: r.drill.rtoMs,
        drillRatio: r.drillRatio,
        memoryMb: r.memory.growthMb,
        controlPlaneCpuMs: r.backup.controlPlaneCpuMs,
      })),
      // The round of the median backup ratio, whole.
      rawDump: chosen.raw,
      backup: chosen.backup,
      drill: chosen.drill,
      memory: chosen.memory,
      restoreToNew,
    },
    goals: {
      backupVsRawDumpRatio: { goal: '<= 1.25', got: ratio, met: ratio <= 1.25 },
      // The largest growth of any round.
      backupMemoryMb: { goal: '<= 30', got: memoryMb, met: memoryMb <= 30 },
      drillRtoVsBackupRatio: {
        goal: '<= 2',
        got: drillRatio,
        met: drillRatio !== null && drillRatio <= 2,
      },
    },
  };
}

// This process is the control plane, whose memory is a goal: it runs as an install runs the
// worker, which takes backups (the image's V8 flags and malloc arenas), relaunched once if it
// does not yet. Node's default young generation here let a backup's Buffers pile up to V8's
// 64 MB external-memory trigger in one run of five; the image's 4 MB collects them as it goes.
if (!(await relaunchWithInstallRuntime('worker'))) await main();
