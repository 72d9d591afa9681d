/**
 * The control plane's backups as data: where they live, the key context, the settings'
 * defaults and checks. Pure; the worker (work.ts) runs them.
 */
import { InvalidInput } from '../errors.ts';
import { checkBackupSchedule, checkRetention, defaultRetention } from '../data-services/backups.ts';
import type { BackupRetention, ControlBackupSettings } from '../models.ts';

/** Nightly, an hour before data services' default (03:00), so the two do not pile up. */
export const defaultControlBackupSchedule = '0 2 * * *';

export const defaultControlBackupSettings = (now: string): ControlBackupSettings => ({
  schedule: defaultControlBackupSchedule,
  retention: { ...defaultRetention },
  updatedAt: now,
});

/** Where a control-plane backup's dump and manifest live in the ObjectStore. */
export function controlBackupKeys(id: string): { objectKey: string; manifestKey: string } {
  const base = `control-backups/${id}`;
  return { objectKey: `${base}/dump.gz.enc`, manifestKey: `${base}/manifest.json` };
}

/** The KeyVault context of a control-plane backup's data key (no org: the install's). */
export const controlBackupKeyContext = (backupId: string): string => `control:backup:${backupId}`;

/** The scratch database a drill restores into, dropped after it (lowercase: an identifier). */
export const drillDatabaseName = (backupId: string): string =>
  `selfdevop_drill_${backupId.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;

/**
 * A database name an operator restores into: a plain lowercase identifier, so it needs no
 * quoting anywhere (a connection URL, psql, pg_restore).
 */
export function checkDatabaseName(name: string, field = 'database'): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name))
    throw new InvalidInput(
      `${field}: ${JSON.stringify(name)} is not a database name this accepts: lowercase letters, digits and _, starting with a letter or _, at most 63 characters`,
      { field },
    );
  return name;
}

/** A settings change, checked: the schedule like data services' (at most hourly), retention 0..max. */
export function checkSettings(
  current: ControlBackupSettings,
  input: { schedule?: string | undefined; retention?: unknown },
  now: string,
): ControlBackupSettings {
  const schedule = input.schedule === undefined ? current.schedule : checkSchedule(input.schedule);
  let retention: BackupRetention = current.retention;
  if (input.retention !== undefined) {
    // Periods left out keep their current value, not the default.
    checkRetention(input.retention, 'retention');
    retention = checkRetention(
      { ...current.retention, ...(input.retention as object) },
      'retention',
    );
  }
  return { schedule, retention, updatedAt: now };
}

function checkSchedule(cron: string): string {
  try {
    return checkBackupSchedule(cron);
  } catch (e) {
    // The same rule as data services' backups, named as this API names the field.
    if (e instanceof InvalidInput)
      throw new InvalidInput(e.message.replace(/^backupSchedule/, 'schedule'), {
        field: 'schedule',
      });
    throw e;
  }
}
