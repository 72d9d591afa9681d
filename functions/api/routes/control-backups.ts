import * as s from '../../../core/schemas.ts';
import {
  getControlBackup,
  listControlBackups,
  requestControlBackup,
  requestControlDrill,
  restoreControlBackup,
  updateControlBackupSettings,
} from '../../../core/control-backups/use-cases.ts';
import { route } from '../route.ts';

/** The control plane's own database: its backups, drills, settings and restores (operators only). */
export const controlBackupRoutes = [
  route({
    method: 'get',
    path: '/api/control-backups',
    summary:
      "The control plane's own backups, newest first, with their drills; the schedule and retention; whether they can run here (and why not)",
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    status: 200,
    handle: ({ deps, principal }) => listControlBackups(deps, principal),
  }),
  route({
    method: 'post',
    path: '/api/control-backups',
    summary:
      "Back up the control plane's database now (202): pg_dump streamed compressed and encrypted to the object store, manifest last, then a drill",
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    status: 202,
    handle: ({ deps, principal }) => requestControlBackup(deps, principal),
  }),
  route({
    method: 'get',
    path: '/api/control-backups/{id}',
    summary: 'One control-plane backup: status, sizes, checksum, row counts and its newest drill',
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    status: 200,
    handle: ({ deps, principal, params }) => getControlBackup(deps, principal, params.id!),
  }),
  route({
    method: 'post',
    path: '/api/control-backups/{id}/drill',
    summary:
      'Drill a completed backup again (202): restored into a scratch database, row counts compared with the manifest, dropped',
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    status: 202,
    handle: ({ deps, principal, params }) => requestControlDrill(deps, principal, params.id!),
  }),
  route({
    method: 'patch',
    path: '/api/control-backups/settings',
    summary:
      'When the control plane is backed up (five-field UTC cron, at most hourly) and what retention keeps (daily/weekly/monthly)',
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    body: s.controlBackupSettingsInput,
    status: 200,
    handle: ({ deps, principal, body }) => updateControlBackupSettings(deps, principal, body),
  }),
  route({
    method: 'post',
    path: '/api/control-backups/restore',
    summary:
      "Restore a control-plane backup (this install's, or another's with its vaultKey) into a NEW database on the same server and check it against the manifest",
    tag: 'control-backups',
    auth: true,
    permission: 'operator',
    body: s.controlRestoreInput,
    status: 200,
    handle: ({ deps, principal, body }) => restoreControlBackup(deps, principal, body),
  }),
];
