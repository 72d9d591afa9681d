import { readFile } from 'node:fs/promises';
import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';

interface ControlBackup {
  id: string;
  trigger: string;
  status: string;
  error: string | null;
  storedBytes: number | null;
  tables: Record<string, number> | null;
  serverVersion: string | null;
  startedAt: string;
  drillStatus: string | null;
  drillError: string | null;
  drillRtoMs: number | null;
  drillRpoMs: number | null;
}

interface Listing {
  available: boolean;
  unavailableReason: string | null;
  settings: {
    schedule: string;
    retention: { daily: number; weekly: number; monthly: number };
  } | null;
  items: ControlBackup[];
}

const size = (n: number | null) =>
  n === null
    ? '-'
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / 1048576).toFixed(1)} MiB`;
const secs = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(1)}s`);
const count = (v: string | undefined, flag: string) => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`${flag} needs a whole number, got ${v}`, 2);
  return Number(v);
};

const usage = `Usage:
  selfdevop control-backups [list] [--json]
  selfdevop control-backups backup [--wait] [--json]
  selfdevop control-backups show ID [--json]
  selfdevop control-backups drill ID [--wait]
  selfdevop control-backups settings [--schedule CRON] [--daily N] [--weekly N] [--monthly N]
  selfdevop control-backups restore (--backup ID | --manifest KEY) --database NAME
        [--vault-key-file FILE] [--json]

The control plane's own database (operators only): pg_dump of it in one snapshot with every
table's row count, compressed and encrypted into the object store, manifest last, then a
drill into a scratch database that must hold the same counts. Scheduled nightly (02:00 UTC)
unless changed; retention keeps the newest of each of the last 14 days, 8 weeks and 6
months, and always the newest backup whose drill passed.

restore puts a backup into a NEW database on the same PostgreSQL server and checks it; point
DATABASE_URL at it to switch. A backup made by another install: copy its
control-backups/<id>/ folder into this install's object store, give --manifest
control-backups/<id>/manifest.json and that install's key file with --vault-key-file.

Examples:
  selfdevop control-backups backup --wait
  selfdevop control-backups settings --schedule "30 1 * * *" --daily 7
  selfdevop control-backups restore --backup cbk_01H... --database selfdevop_restored`;

export const controlBackups: Command = {
  name: 'control-backups',
  summary: "The control plane's own database: backups, drills, schedule, retention, restore",
  help: usage,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      json: { type: 'boolean' },
      wait: { type: 'boolean' },
      schedule: { type: 'string' },
      daily: { type: 'string' },
      weekly: { type: 'string' },
      monthly: { type: 'string' },
      backup: { type: 'string' },
      manifest: { type: 'string' },
      database: { type: 'string' },
      'vault-key-file': { type: 'string' },
    });
    const [sub = 'list', arg] = positionals;
    const api = await client(ctx.env);
    const waitFor = async (b: ControlBackup, drillOnly = false) => {
      // Bounded: an hour covers the dump and drill of any control-plane database.
      for (let i = 0; i < 3600; i++) {
        const settled = drillOnly
          ? b.drillStatus !== 'running'
          : b.status === 'failed' || (b.drillStatus !== null && b.drillStatus !== 'running');
        if (settled && (i > 0 || !drillOnly)) return b;
        await new Promise((r) => setTimeout(r, 1000));
        b = await api.call<ControlBackup>('GET', `/api/control-backups/${b.id}`);
      }
      return b;
    };
    const report = (b: ControlBackup) => {
      ctx.o.out(`backup ${b.id}: ${b.status}${b.drillStatus ? `, drill ${b.drillStatus}` : ''}`);
      if (b.error) ctx.o.err(`failed: ${b.error}`);
      if (b.drillError) ctx.o.err(`drill failed: ${b.drillError}`);
    };
    switch (sub) {
      case 'list': {
        const l = await api.call<Listing>('GET', '/api/control-backups');
        if (values.json) return (json(ctx.o, l), 0);
        if (!l.available)
          ctx.o.err(`control-plane backups do not run here: ${l.unavailableReason}`);
        if (l.settings)
          ctx.o.out(
            `schedule: ${l.settings.schedule} (UTC); retention: ${l.settings.retention.daily} daily, ${l.settings.retention.weekly} weekly, ${l.settings.retention.monthly} monthly`,
          );
        table(
          ctx.o,
          ['ID', 'STARTED', 'TRIGGER', 'STATUS', 'SIZE', 'TABLES', 'DRILL', 'RTO', 'RPO'],
          l.items.map((b) => [
            b.id,
            b.startedAt,
            b.trigger,
            b.status === 'failed' ? `failed: ${b.error ?? ''}` : b.status,
            size(b.storedBytes),
            b.tables ? String(Object.keys(b.tables).length) : '-',
            b.drillStatus === 'failed' ? `failed: ${b.drillError ?? ''}` : (b.drillStatus ?? '-'),
            secs(b.drillRtoMs),
            secs(b.drillRpoMs),
          ]),
          'no control-plane backups yet: selfdevop control-backups backup',
        );
        return l.available ? 0 : 1;
      }
      case 'backup': {
        let b = await api.call<ControlBackup>('POST', '/api/control-backups');
        if (values.wait) b = await waitFor(b);
        if (values.json) return (json(ctx.o, b), b.status === 'failed' ? 1 : 0);
        report(b);
        if (values.wait && b.drillStatus !== 'passed') return 1;
        return b.status === 'failed' ? 1 : 0;
      }
      case 'show': {
        if (!arg) throw new CliError('control-backups show needs the ID', 2);
        const b = await api.call<ControlBackup>('GET', `/api/control-backups/${arg}`);
        if (values.json) return (json(ctx.o, b), 0);
        report(b);
        table(
          ctx.o,
          ['TABLE', 'ROWS'],
          Object.entries(b.tables ?? {}).map(([t, n]) => [t, n]),
          'no manifest (the backup did not complete)',
        );
        return b.status === 'failed' || b.drillStatus === 'failed' ? 1 : 0;
      }
      case 'drill': {
        if (!arg) throw new CliError('control-backups drill needs the ID', 2);
        let b = await api.call<ControlBackup>('POST', `/api/control-backups/${arg}/drill`);
        if (values.wait) b = await waitFor({ ...b, drillStatus: 'running' }, true);
        report(b);
        return b.drillStatus === 'failed' ? 1 : 0;
      }
      case 'settings': {
        const retention = {
          ...(values.daily !== undefined ? { daily: count(values.daily, '--daily') } : {}),
          ...(values.weekly !== undefined ? { weekly: count(values.weekly, '--weekly') } : {}),
          ...(values.monthly !== undefined ? { monthly: count(values.monthly, '--monthly') } : {}),
        };
        const body = {
          ...(values.schedule ? { schedule: values.schedule } : {}),
          ...(Object.keys(retention).length ? { retention } : {}),
        };
        if (Object.keys(body).length === 0)
          throw new CliError(
            'control-backups settings needs --schedule or --daily/--weekly/--monthly',
            2,
          );
        const s = await api.call<NonNullable<Listing['settings']>>(
          'PATCH',
          '/api/control-backups/settings',
          body,
        );
        if (values.json) return (json(ctx.o, s), 0);
        ctx.o.out(
          `control-plane backups run at ${s.schedule} (UTC); retention ${s.retention.daily} daily, ${s.retention.weekly} weekly, ${s.retention.monthly} monthly`,
        );
        return 0;
      }
      case 'restore': {
        if (!values.database)
          throw new CliError('control-backups restore needs --database NAME', 2);
        if (!values.backup === !values.manifest)
          throw new CliError('control-backups restore needs --backup ID or --manifest KEY', 2);
        const vaultKey = values['vault-key-file']
          ? (await readFile(values['vault-key-file'], 'utf8')).trim()
          : undefined;
        const r = await api.call<{
          backupId: string;
          database: string;
          matchesManifest: boolean;
          problems: string | null;
          tables: Record<string, number>;
        }>('POST', '/api/control-backups/restore', {
          database: values.database,
          ...(values.backup ? { backupId: values.backup } : { manifestKey: values.manifest }),
          ...(vaultKey ? { vaultKey } : {}),
        });
        if (values.json) return (json(ctx.o, r), r.matchesManifest ? 0 : 1);
        ctx.o.out(
          `backup ${r.backupId} restored into database ${r.database}: ${Object.keys(r.tables).length} tables, ${r.matchesManifest ? 'every row count matches the manifest' : `DIFFERS from the manifest: ${r.problems}`}`,
        );
        return r.matchesManifest ? 0 : 1;
      }
      default:
        throw new CliError(`unknown control-backups command ${sub}\n\n${usage}`, 2);
    }
  },
};
