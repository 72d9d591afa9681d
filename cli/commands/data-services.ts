import { createReadStream, createWriteStream } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DirectDownload } from '../../core/data-services/backup-transfer.ts';
import { ApiError, decryptFromStore, putToStore } from '../client.ts';
import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject, resolveService } from '../resolve.ts';

interface DataService {
  id: string;
  projectId: string;
  name: string;
  engine: string;
  version: string;
  nodeId: string;
  status: string;
  error: string | null;
  host: string;
  port: number;
  volume: string;
  settings: Record<string, unknown>;
  backupSchedule: string;
  drillSchedule: string;
  createdAt: string;
  rotating?: boolean;
  passwordRotatedAt?: string | null;
  mode?: 'dedicated' | 'shared';
  shareable?: boolean;
  sharedServerId?: string | null;
  database?: string | null;
  links?: Link[];
  upgrade?: {
    status: 'upgrading' | 'upgraded' | 'failed';
    from: string;
    to: string;
    step: string | null;
    error: string | null;
    rolledBack: boolean;
  } | null;
  move?: {
    status: 'moving' | 'moved' | 'failed';
    targetId: string | null;
    step: string | null;
    error: string | null;
  } | null;
}

interface Backup {
  id: string;
  trigger: string;
  status: string;
  error: string | null;
  rawBytes: number | null;
  storedBytes: number | null;
  sha256: string | null;
  tables: Record<string, number> | null;
  keys: number | null;
  startedAt: string;
  drillStatus: string | null;
  drillError: string | null;
  drillRtoMs: number | null;
  drillRpoMs: number | null;
}

interface Drill {
  backupId: string;
  status: string;
  error: string | null;
  rtoMs: number | null;
  rpoMs: number | null;
  at: string | null;
}

const size = (n: number | null) =>
  n === null
    ? '-'
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / 1048576).toFixed(1)} MiB`;
const secs = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);

interface Link {
  id: string;
  serviceId: string;
  envName: string;
}

const usage = `Usage:
  selfdevop data-services [list] [--project NAME|ID] [--json]
  selfdevop data-services create NAME --project NAME|ID --engine redis|mariadb|postgres
        [--version V] [--node ID] [--maxmemory-mb N] [--eviction POLICY]
        [--persistence none|rdb|aof] [--shareable] [--drill-schedule every_backup|weekly]
        [--wait] [--json]
  selfdevop data-services create NAME --project NAME|ID --shared-server ID [--wait] [--json]
  selfdevop data-services show ID [--json]
  selfdevop data-services link ID --service NAME|ID [--project NAME|ID] [--env NAME]
  selfdevop data-services unlink ID LINK_ID
  selfdevop data-services rm ID --confirm NAME [--remove-volume]
  selfdevop data-services rotate-password ID [--wait]
  selfdevop data-services backup ID [--wait] [--json]
  selfdevop data-services backups ID [--json]
  selfdevop data-services drills ID [--json]
  selfdevop data-services schedule ID CRON
  selfdevop data-services drill-schedule ID [every_backup|weekly]
  selfdevop data-services retention ID [--daily N] [--weekly N] [--monthly N]
  selfdevop data-services restore ID --backup BACKUP_ID --target new|in_place
        [--confirm NAME] [--name NEW_NAME] [--dedicated]
  selfdevop data-services download ID BACKUP_ID --out FILE
  selfdevop data-services upgrade ID --version V [--wait] [--json]
  selfdevop data-services export ID BACKUP_ID --out PREFIX [--passphrase-file FILE]
  selfdevop data-services import ID --from PREFIX [--passphrase-file FILE] [--wait] [--json]
  selfdevop data-services move-to-dedicated ID|NAME [--project NAME|ID] [--wait]
  selfdevop data-services confirm-move ID|NAME [--project NAME|ID]

create starts a Redis 7, MariaDB 10.11 or PostgreSQL 15 server for a project on a node
(one labelled role=data when there is one), its data on a named volume, reachable only
from the project's app containers; the password is generated and never shown. --wait
polls until it is ready (exit 1 when it failed). Redis's memory limit (256 MB), eviction
policy (noeviction) and persistence (rdb) are always set explicitly.
--shareable makes a MariaDB or PostgreSQL server that holds other data services' databases
(it is never linked itself); --shared-server ID then makes one database and user of its
own on that server (same project; its engine unless --engine says otherwise), with its own
password, links, backups and drills, for the price of no extra container. Redis is never
shared. rm of a shared one drops its database and user (--remove-volume) or only its login.
restore --target new --dedicated restores a shared one's backup into a server of its own
(then link it, unlink the shared one and rm it once the copy is checked).
move-to-dedicated does all of that as one action: a fresh backup of a database on a shared
server, restored into a new dedicated data service, every link moved to it under the same
env name, the linked services redeployed (health-gated). The shared copy stays, unlinked,
until confirm-move deletes it. A failure leaves the shared copy linked and names the step;
--wait waits for the outcome (exit 1 when the move failed).
link hands its URL to a service as --env (REDIS_URL or DATABASE_URL by default) from
the service's next release on. rm needs the name again; the data volume is kept unless
--remove-volume (then the data is gone for good). A linked data service is not removed.
rotate-password gives it a new generated password: set in the engine and checked first (a
failure keeps the old one working), then linked services are redeployed with the new URL
and the old password stops working (Redis: once those redeploys end). --wait waits for the
outcome (exit 1 when the rotation failed).
backup takes a backup now (dumped next to the server, compressed, encrypted, checksummed,
manifest last); a restore drill into a container with no network follows and checks the
row counts (or key count). --wait waits for the drill (exit 1 unless it passed). Scheduled
backups run nightly (schedule changes the five-field UTC cron, at most hourly).
drill-schedule weekly (or create --drill-schedule weekly) drills a scheduled backup only
when no backup of the last 7 days has a drill that passed (or is running), and always the
next one after a failed drill; a backup asked for with backup is always drilled; without a
value it shows the current one (every_backup by default). retention
keeps the newest backup of each of the last N days, weeks and months (14/8/6 unless
changed), and always the newest whose drill passed. restore
--target new makes a new data service from the backup; in_place needs --confirm NAME and
backs up the current state first. download writes the decrypted dump to --out.
upgrade moves the server to a newer minor of its release line in place: a backup first,
then the new image on the same volume, checked; a failure rolls back to the old image
(--wait waits, exit 1 unless upgraded). Another release line (PostgreSQL 15 → 16) is
refused: restore a backup into a new data service of that version instead.
export takes a backup to another install: PREFIX.json (its manifest and its data key
wrapped under your passphrase) and PREFIX.gz.enc (the object, still encrypted). On the
other install, import ID --from PREFIX uploads both into data service ID (same engine):
its vault reseals the key, the object streams up and a drill runs (--wait waits for it,
exit 1 unless it passed); then restore it like any backup. The passphrase (at least 12
characters) is read from --passphrase-file or SELFDEVOP_BACKUP_PASSPHRASE, never argv.

Example:
  selfdevop data-services create cache --project shop --engine redis --maxmemory-mb 512 --wait
  selfdevop data-services create main --project shop --engine mariadb --shareable --wait
  selfdevop data-services create shop-db --project shop --shared-server dat_01… --wait
  selfdevop data-services link dat_01… --service web`;

/** A data service's id from its id or its name (unique within a project; --project narrows). */
async function dataServiceId(
  api: Awaited<ReturnType<typeof client>>,
  arg: string,
  project: string | undefined,
): Promise<string> {
  if (/^dat_/.test(arg)) return arg;
  let query = '';
  if (project) {
    const p = await findProject(api, project);
    if (!p) throw new CliError(`project ${project} not found`);
    query = `?projectId=${p.id}`;
  }
  const found = (await api.all<DataService>(`/api/data-services${query}`)).filter(
    (d) => d.name === arg,
  );
  if (found.length === 0) throw new CliError(`data service ${arg} not found`);
  if (found.length > 1)
    throw new CliError(`${found.length} data services are named ${arg}: give --project or the ID`);
  return found[0]!.id;
}

const path = (id: string) => `/api/data-services/${encodeURIComponent(id)}`;

/** A backup's passphrase from a file or the environment: never from argv (ps, history). */
async function passphraseOf(
  file: string | undefined,
  env: Record<string, string | undefined>,
): Promise<string> {
  const value = file
    ? (await readFile(file, 'utf8')).replace(/\r?\n$/, '')
    : env.SELFDEVOP_BACKUP_PASSPHRASE;
  if (!value)
    throw new CliError(
      'a backup passphrase is needed: --passphrase-file FILE or SELFDEVOP_BACKUP_PASSPHRASE',
      2,
    );
  return value;
}

/** How it is hosted, when not simply a server of its own. */
const modeText = (ds: DataService): string =>
  ds.mode === 'shared'
    ? `, database ${ds.database} on shared server ${ds.sharedServerId}`
    : ds.shareable
      ? ', shareable server'
      : '';

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    project: { type: 'string' },
    engine: { type: 'string' },
    version: { type: 'string' },
    node: { type: 'string' },
    'maxmemory-mb': { type: 'string' },
    eviction: { type: 'string' },
    persistence: { type: 'string' },
    shareable: { type: 'boolean' },
    dedicated: { type: 'boolean' },
    'shared-server': { type: 'string' },
    service: { type: 'string' },
    env: { type: 'string' },
    confirm: { type: 'string' },
    'remove-volume': { type: 'boolean' },
    wait: { type: 'boolean' },
    json: { type: 'boolean' },
    backup: { type: 'string' },
    target: { type: 'string' },
    name: { type: 'string' },
    out: { type: 'string' },
    from: { type: 'string' },
    'passphrase-file': { type: 'string' },
    'drill-schedule': { type: 'string' },
    daily: { type: 'string' },
    weekly: { type: 'string' },
    monthly: { type: 'string' },
  });
  const [sub = 'list', arg, arg2] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'list': {
      let query = '';
      if (values.project) {
        const p = await findProject(api, values.project);
        if (!p) throw new CliError(`project ${values.project} not found`);
        query = `?projectId=${p.id}`;
      }
      const items = await api.all<DataService>(`/api/data-services${query}`);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'NAME', 'ENGINE', 'STATUS', 'HOST', 'NODE'],
        items.map((d) => [
          d.id,
          d.name,
          `${d.engine} ${d.version}`,
          d.status,
          `${d.host}:${d.port}`,
          d.nodeId,
        ]),
        'no data services yet: selfdevop data-services create NAME --project P --engine redis',
      );
      return 0;
    }
    case 'create': {
      if (!arg) throw new CliError('data-services create needs a NAME', 2);
      if (!values.project) throw new CliError('data-services create needs --project', 2);
      const sharedServer = values['shared-server'];
      if (!values.engine && !sharedServer)
        throw new CliError('data-services create needs --engine redis|mariadb|postgres', 2);
      const p = await findProject(api, values.project);
      if (!p) throw new CliError(`project ${values.project} not found`);
      // A database on a shared server is of the server's engine: no need to say it twice.
      const engine =
        values.engine ?? (await api.call<DataService>('GET', path(sharedServer!))).engine;
      const maxmemory = values['maxmemory-mb'];
      let ds = await api.call<DataService>('POST', '/api/data-services', {
        projectId: p.id,
        name: arg,
        engine,
        ...(values.version ? { version: values.version } : {}),
        ...(values.node ? { nodeId: values.node } : {}),
        ...(maxmemory !== undefined ? { maxmemoryMb: Number(maxmemory) } : {}),
        ...(values.eviction ? { evictionPolicy: values.eviction } : {}),
        ...(values.persistence ? { persistence: values.persistence } : {}),
        ...(values.shareable ? { shareable: true } : {}),
        ...(sharedServer ? { sharedServerId: sharedServer } : {}),
        // Sent as typed: the API names the field and the values it takes.
        ...(values['drill-schedule'] ? { drillSchedule: values['drill-schedule'] } : {}),
      });
      if (values.wait) {
        // Bounded: a server that needs longer than 5 minutes has failed for the user anyway.
        for (let i = 0; i < 300 && ds.status === 'provisioning'; i++) {
          await new Promise((r) => setTimeout(r, 1000));
          ds = await api.call<DataService>('GET', path(ds.id));
        }
      }
      if (values.json) return (json(ctx.o, ds), ds.status === 'failed' ? 1 : 0);
      ctx.o.out(
        `data service ${ds.name} (${ds.id}): ${ds.status}, ${ds.engine} ${ds.version} at ${ds.host}:${ds.port} on node ${ds.nodeId}${modeText(ds)}`,
      );
      if (ds.status === 'failed') {
        ctx.o.err(`failed: ${ds.error ?? 'no reason given'}`);
        return 1;
      }
      return 0;
    }
    case 'show': {
      if (!arg) throw new CliError('data-services show needs the ID', 2);
      const ds = await api.call<DataService>('GET', path(arg));
      if (values.json) return (json(ctx.o, ds), 0);
      ctx.o.out(`${ds.name} (${ds.id}): ${ds.status}${ds.error ? ` (${ds.error})` : ''}`);
      ctx.o.out(
        `  ${ds.engine} ${ds.version} at ${ds.host}:${ds.port}, node ${ds.nodeId}, volume ${ds.volume}${modeText(ds)}`,
      );
      if (Object.keys(ds.settings).length) ctx.o.out(`  settings: ${JSON.stringify(ds.settings)}`);
      ctx.o.out(`  backups: ${ds.backupSchedule} (UTC), drills: ${ds.drillSchedule}`);
      if (ds.rotating) ctx.o.out('  password: rotating');
      else if (ds.passwordRotatedAt) ctx.o.out(`  password: rotated ${ds.passwordRotatedAt}`);
      if (ds.move)
        ctx.o.out(
          `  move to dedicated: ${ds.move.status}${ds.move.status === 'moving' ? ` (step ${ds.move.step})` : ''}${ds.move.targetId ? `, to ${ds.move.targetId}` : ''}${ds.move.error ? ` (${ds.move.error})` : ''}`,
        );
      if (ds.upgrade)
        ctx.o.out(
          `  upgrade ${ds.upgrade.from} → ${ds.upgrade.to}: ${ds.upgrade.status}${ds.upgrade.step ? ` (step ${ds.upgrade.step})` : ''}${ds.upgrade.error ? ` (${ds.upgrade.error})` : ''}${ds.upgrade.rolledBack ? ', rolled back' : ''}`,
        );
      for (const l of ds.links ?? [])
        ctx.o.out(`  linked: ${l.serviceId} as ${l.envName} (${l.id})`);
      return 0;
    }
    case 'link': {
      if (!arg) throw new CliError('data-services link needs the ID', 2);
      if (!values.service) throw new CliError('data-services link needs --service', 2);
      const svc = await resolveService(api, values.service, values.project);
      const link = await api.call<Link>('POST', `${path(arg)}/links`, {
        serviceId: svc.id,
        ...(values.env ? { envName: values.env } : {}),
      });
      if (values.json) return (json(ctx.o, link), 0);
      ctx.o.out(
        `linked as ${link.envName} (${link.id}); it arrives with the service's next release`,
      );
      return 0;
    }
    case 'unlink': {
      if (!arg || !arg2) throw new CliError('data-services unlink needs the ID and the LINK_ID', 2);
      await api.call('DELETE', `${path(arg)}/links/${encodeURIComponent(arg2)}`);
      ctx.o.out(`unlinked; the env var leaves with the service's next release`);
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`data-services ${sub} needs the ID`, 2);
      if (!values.confirm) throw new CliError(`data-services ${sub} needs --confirm NAME`, 2);
      const volume = values['remove-volume'] ? 'remove' : 'keep';
      const q = new URLSearchParams({ confirm: values.confirm, volume });
      await api.call('DELETE', `${path(arg)}?${q}`);
      ctx.o.out(
        volume === 'remove'
          ? `removing data service ${arg} and its data volume`
          : `removing data service ${arg}; its data volume is kept on the node`,
      );
      return 0;
    }
    case 'move-to-dedicated': {
      if (!arg) throw new CliError('data-services move-to-dedicated needs the ID or NAME', 2);
      const id = await dataServiceId(api, arg, values.project);
      await api.call('POST', `${path(id)}/move-to-dedicated`);
      if (!values.wait) {
        ctx.o.out(
          `moving ${arg} to a dedicated server: backup, restore, re-link, redeploy (show ${id} for progress)`,
        );
        return 0;
      }
      // Bounded: a backup and a restore of a large database take a while; one hour at most.
      for (let i = 0; i < 1800; i++) {
        await new Promise((r) => setTimeout(r, 2000));
        const ds = await api.call<DataService>('GET', path(id));
        if (ds.move?.status === 'moving') continue;
        if (ds.move?.status === 'moved') {
          ctx.o.out(
            `moved ${ds.name} to dedicated data service ${ds.move.targetId}; the shared copy is kept, unlinked: selfdevop data-services confirm-move ${id} drops it`,
          );
          return 0;
        }
        ctx.o.err(`move of ${ds.name} failed: ${ds.move?.error ?? 'no reason recorded'}`);
        ctx.o.err('the shared copy is still linked and serving');
        return 1;
      }
      throw new CliError(
        `move of ${arg} still running after an hour; see data-services show ${id}`,
      );
    }
    case 'confirm-move': {
      if (!arg) throw new CliError('data-services confirm-move needs the ID or NAME', 2);
      const id = await dataServiceId(api, arg, values.project);
      await api.call('POST', `${path(id)}/confirm-move`);
      ctx.o.out(`removing the shared copy ${arg} (its database and user); the move is done`);
      return 0;
    }
    case 'rotate-password': {
      if (!arg) throw new CliError('data-services rotate-password needs the ID', 2);
      await api.call('POST', `${path(arg)}/rotate-password`);
      if (!values.wait) {
        ctx.o.out(
          `rotating the password of ${arg}; linked services are redeployed with the new one`,
        );
        return 0;
      }
      // Bounded: setting and checking the password takes seconds; two minutes is generous.
      for (let i = 0; i < 120; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const ds = await api.call<DataService>('GET', path(arg));
        if (ds.rotating) continue;
        const q = new URLSearchParams({ targetId: arg, limit: '20' });
        const events = await api.call<{
          items: { action: string; data: Record<string, unknown> }[];
        }>('GET', `/api/audit-events?${q}`);
        const last = events.items.find(
          (e) =>
            e.action === 'data_service.password_rotated' ||
            e.action === 'data_service.rotation_failed',
        );
        if (last?.action === 'data_service.rotation_failed') {
          ctx.o.err(`rotation failed: ${String(last.data.reason)}; the old password still works`);
          return 1;
        }
        const releases = (last?.data.releases as string[] | undefined) ?? [];
        ctx.o.out(
          `password rotated${releases.length ? `; redeploying: ${releases.join(', ')}` : ''}`,
        );
        return 0;
      }
      ctx.o.err('the rotation is still running; see data-services show');
      return 1;
    }
    case 'backup': {
      if (!arg) throw new CliError('data-services backup needs the ID', 2);
      let b = await api.call<Backup>('POST', `${path(arg)}/backups`);
      if (values.wait) {
        // Bounded: an hour covers the dump and its drill of any database this CLI waits on.
        for (let i = 0; i < 3600; i++) {
          if (b.status === 'failed' || (b.drillStatus && b.drillStatus !== 'running')) break;
          await new Promise((r) => setTimeout(r, 1000));
          const list = await api.call<{ items: Backup[] }>('GET', `${path(arg)}/backups`);
          b = list.items.find((x) => x.id === b.id) ?? b;
        }
      }
      if (values.json) return (json(ctx.o, b), b.status === 'failed' ? 1 : 0);
      ctx.o.out(`backup ${b.id}: ${b.status}${b.drillStatus ? `, drill ${b.drillStatus}` : ''}`);
      if (b.error) ctx.o.err(`failed: ${b.error}`);
      if (b.drillError) ctx.o.err(`drill failed: ${b.drillError}`);
      if (values.wait && b.drillStatus !== 'passed') return 1;
      return b.status === 'failed' ? 1 : 0;
    }
    case 'backups': {
      if (!arg) throw new CliError('data-services backups needs the ID', 2);
      const list = await api.call<{
        items: Backup[];
        backupSchedule: string;
        drillSchedule: string;
      }>('GET', `${path(arg)}/backups`);
      if (values.json) return (json(ctx.o, list), 0);
      ctx.o.out(`schedule: ${list.backupSchedule} (UTC), drills: ${list.drillSchedule}`);
      table(
        ctx.o,
        ['ID', 'STARTED', 'TRIGGER', 'STATUS', 'SIZE', 'DRILL', 'CONTENTS'],
        list.items.map((b) => [
          b.id,
          b.startedAt,
          b.trigger,
          b.status === 'failed' ? `failed: ${b.error ?? ''}` : b.status,
          size(b.storedBytes),
          b.drillStatus ?? '-',
          b.keys !== null
            ? `${b.keys} keys`
            : b.tables
              ? Object.entries(b.tables)
                  .map(([t, n]) => `${t}=${n}`)
                  .join(' ')
              : '-',
        ]),
        'no backups yet: selfdevop data-services backup ID',
      );
      return 0;
    }
    case 'drills': {
      if (!arg) throw new CliError('data-services drills needs the ID', 2);
      const list = await api.call<{ items: Drill[] }>('GET', `${path(arg)}/drills`);
      if (values.json) return (json(ctx.o, list.items), 0);
      table(
        ctx.o,
        ['BACKUP', 'AT', 'STATUS', 'RTO', 'RPO', 'REASON'],
        list.items.map((d) => [
          d.backupId,
          d.at ?? '-',
          d.status,
          secs(d.rtoMs),
          secs(d.rpoMs),
          d.error ?? '',
        ]),
        'no drills yet: a backup is drilled once it is stored (see drill-schedule)',
      );
      return list.items[0]?.status === 'failed' ? 1 : 0;
    }
    case 'schedule': {
      if (!arg || !arg2) throw new CliError('data-services schedule needs the ID and a CRON', 2);
      const r = await api.call<{ backupSchedule: string }>('PUT', `${path(arg)}/backup-schedule`, {
        cron: arg2,
      });
      ctx.o.out(`backups run at ${r.backupSchedule} (UTC)`);
      return 0;
    }
    case 'drill-schedule': {
      if (!arg) throw new CliError('data-services drill-schedule needs the ID', 2);
      const r = arg2
        ? await api.call<{ drillSchedule: string }>('PUT', `${path(arg)}/drill-schedule`, {
            drillSchedule: arg2,
          })
        : await api.call<{ drillSchedule: string }>('GET', `${path(arg)}/backups`);
      if (values.json) return (json(ctx.o, { drillSchedule: r.drillSchedule }), 0);
      ctx.o.out(
        r.drillSchedule === 'weekly'
          ? 'drills: weekly (a scheduled backup when none of the last 7 days passed one, and after a failed drill; backups asked for are always drilled)'
          : 'drills: every_backup (each backup is drilled once it is stored)',
      );
      return 0;
    }
    case 'retention': {
      if (!arg) throw new CliError('data-services retention needs the ID', 2);
      const body: Record<string, number> = {};
      for (const period of ['daily', 'weekly', 'monthly'] as const) {
        const v = values[period];
        if (v === undefined) continue;
        if (!/^\d+$/.test(v)) throw new CliError(`--${period} needs a whole number, got ${v}`, 2);
        body[period] = Number(v);
      }
      if (Object.keys(body).length === 0) {
        const list = await api.call<{ backupRetention: Record<string, number> }>(
          'GET',
          `${path(arg)}/backups`,
        );
        body.daily = list.backupRetention.daily!;
        body.weekly = list.backupRetention.weekly!;
        body.monthly = list.backupRetention.monthly!;
        ctx.o.out(`retention: ${body.daily} daily, ${body.weekly} weekly, ${body.monthly} monthly`);
        return 0;
      }
      const r = await api.call<{ backupRetention: Record<string, number> }>(
        'PUT',
        `${path(arg)}/backup-retention`,
        body,
      );
      if (values.json) return (json(ctx.o, r), 0);
      ctx.o.out(
        `retention: ${r.backupRetention.daily} daily, ${r.backupRetention.weekly} weekly, ${r.backupRetention.monthly} monthly (and the newest backup whose drill passed)`,
      );
      return 0;
    }
    case 'restore': {
      if (!arg) throw new CliError('data-services restore needs the ID', 2);
      if (!values.backup) throw new CliError('data-services restore needs --backup BACKUP_ID', 2);
      if (values.target !== 'new' && values.target !== 'in_place')
        throw new CliError('data-services restore needs --target new|in_place', 2);
      const r = await api.call<{ dataService: DataService }>('POST', `${path(arg)}/restore`, {
        backupId: values.backup,
        target: values.target,
        ...(values.confirm ? { confirm: values.confirm } : {}),
        ...(values.name ? { name: values.name } : {}),
        ...(values.dedicated ? { dedicated: true } : {}),
      });
      if (values.json) return (json(ctx.o, r), 0);
      ctx.o.out(
        values.target === 'new'
          ? `restoring into new data service ${r.dataService.name} (${r.dataService.id})`
          : `restoring ${r.dataService.name} in place; its current state is backed up first`,
      );
      return 0;
    }
    case 'download': {
      if (!arg || !arg2) throw new CliError('data-services download needs the ID and BACKUP_ID', 2);
      if (!values.out) throw new CliError('data-services download needs --out FILE', 2);
      const base = `${path(arg)}/backups/${encodeURIComponent(arg2)}`;
      let direct: DirectDownload | null = null;
      try {
        // Where the store serves backups itself (the cloud, whose API answers 6 MB at most),
        // the dump comes from there and is checked and decrypted here.
        direct = await api.call<DirectDownload>('POST', `${base}/download-url`);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 'no_direct_download')) throw e;
      }
      if (direct) await decryptFromStore(direct, values.out);
      else {
        const body = await api.download(`${base}/download`);
        await pipeline(Readable.from(body), createWriteStream(values.out, { mode: 0o600 }));
      }
      ctx.o.out(`wrote ${values.out}`);
      return 0;
    }
    case 'upgrade': {
      if (!arg) throw new CliError('data-services upgrade needs the ID', 2);
      if (!values.version) throw new CliError('data-services upgrade needs --version V', 2);
      let d = await api.call<DataService>('POST', `${path(arg)}/upgrade`, {
        version: values.version,
      });
      if (values.wait) {
        // Bounded: a backup, a swap and a check; one hour at most.
        for (let i = 0; i < 1800 && d.upgrade?.status === 'upgrading'; i++) {
          await new Promise((r) => setTimeout(r, 2000));
          d = await api.call<DataService>('GET', path(d.id));
        }
      }
      if (values.json) json(ctx.o, d);
      else {
        const u = d.upgrade!;
        ctx.o.out(
          u.status === 'upgrading'
            ? `upgrading ${d.name} ${u.from} → ${u.to}: backup, swap, check (show ${d.id} for progress)`
            : u.status === 'upgraded'
              ? `upgraded ${d.name} ${u.from} → ${u.to}`
              : `upgrade of ${d.name} to ${u.to} failed at ${u.step}: ${u.error}${u.rolledBack ? ` (rolled back: ${u.from} serves the same data)` : ''}`,
        );
      }
      return values.wait && d.upgrade?.status !== 'upgraded' ? 1 : 0;
    }
    case 'export': {
      if (!arg || !arg2) throw new CliError('data-services export needs the ID and BACKUP_ID', 2);
      if (!values.out) throw new CliError('data-services export needs --out PREFIX', 2);
      const passphrase = await passphraseOf(values['passphrase-file'], ctx.env);
      const base = `${path(arg)}/backups/${encodeURIComponent(arg2)}`;
      const bundle = await api.call('POST', `${base}/export`, { passphrase });
      await writeFile(`${values.out}.json`, JSON.stringify(bundle, null, 2) + '\n', {
        mode: 0o600,
      });
      const body = await api.download(`${base}/object`);
      await pipeline(
        Readable.from(body),
        createWriteStream(`${values.out}.gz.enc`, { mode: 0o600 }),
      );
      ctx.o.out(`wrote ${values.out}.json and ${values.out}.gz.enc`);
      return 0;
    }
    case 'import': {
      if (!arg) throw new CliError('data-services import needs the ID', 2);
      if (!values.from) throw new CliError('data-services import needs --from PREFIX', 2);
      const passphrase = await passphraseOf(values['passphrase-file'], ctx.env);
      let bundle: unknown;
      try {
        bundle = JSON.parse(await readFile(`${values.from}.json`, 'utf8'));
      } catch (e) {
        throw new CliError(`cannot read ${values.from}.json: ${(e as Error).message}`, 2);
      }
      const object = `${values.from}.gz.enc`;
      try {
        await access(object);
      } catch (e) {
        throw new CliError(`cannot read ${object}: ${(e as Error).message}`, 2);
      }
      const started = await api.call<{
        backup: Backup;
        uploadPath: string;
        upload?: { url: string; headers: Record<string, string>; completePath: string };
      }>('POST', `${path(arg)}/backups/import`, { bundle, passphrase });
      let b: Backup;
      if (started.upload) {
        // The cloud: the object goes to the store itself, then the API checks and drills it.
        await putToStore(started.upload.url, started.upload.headers, object);
        b = await api.call<Backup>('POST', started.upload.completePath);
      } else
        b = await api.upload<Backup>(
          started.uploadPath,
          createReadStream(object, { highWaterMark: 256 * 1024 }),
        );
      if (values.wait) {
        // Bounded: a drill of a large backup takes a while; one hour at most.
        for (let i = 0; i < 1800 && b.drillStatus !== 'passed' && b.drillStatus !== 'failed'; i++) {
          await new Promise((r) => setTimeout(r, 2000));
          const list = await api.call<{ items: Backup[] }>('GET', `${path(arg)}/backups`);
          b = list.items.find((x) => x.id === b.id) ?? b;
        }
      }
      if (values.json) json(ctx.o, b);
      else
        ctx.o.out(
          `imported backup ${b.id}: ${b.status}${b.drillStatus ? `, drill ${b.drillStatus}` : ', drill queued'}${b.drillError ? ` (${b.drillError})` : ''}`,
        );
      return values.wait && b.drillStatus !== 'passed' ? 1 : 0;
    }
    default:
      throw new CliError(
        `unknown data-services command ${sub}: use list, create, show, link, unlink, rm, rotate-password, backup, backups, drills, schedule, drill-schedule, retention, restore, download, upgrade, export, import, move-to-dedicated or confirm-move`,
        2,
      );
  }
}

export const dataServices: Command = {
  name: 'data-services',
  summary:
    'Redis, MariaDB and PostgreSQL for a project: list, create, show, link, unlink, rm, rotate-password, backup, backups, drills, restore',
  help: usage,
  run,
};
