import * as s from '../../../core/schemas.ts';
import {
  createDataService,
  deleteDataService,
  getDataService,
  linkDataService,
  listDataServiceLinks,
  listDataServices,
  unlinkDataService,
} from '../../../core/data-services/use-cases.ts';
import {
  downloadBackup,
  listBackups,
  listDrills,
  requestBackup,
  restoreBackup,
  setBackupRetention,
  setBackupSchedule,
  setDrillSchedule,
} from '../../../core/data-services/backup-use-cases.ts';
import {
  backupObject,
  exportBackup,
  importBackup,
  backupUploadUrl,
  backupDownloadUrl,
  completeBackupUpload,
  uploadBackupObject,
} from '../../../core/data-services/backup-transfer.ts';
import { confirmMove, requestMove } from '../../../core/data-services/move.ts';
import { requestUpgrade } from '../../../core/data-services/upgrade.ts';
import { rotateDataServicePassword } from '../../../core/data-services/rotation.ts';
import { route } from '../route.ts';

const byProject = s.pageQuery.extend({ projectId: s.id.optional() });

export const dataServiceRoutes = [
  route({
    method: 'post',
    path: '/api/data-services',
    summary:
      'Create a Redis, MariaDB or PostgreSQL service in a project (202: poll until status is ready or failed)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.createDataServiceInput,
    status: 202,
    handle: ({ deps, principal, body, ctx }) => createDataService(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services',
    summary: "The org's data services (never their passwords), optionally of one project",
    tag: 'data-services',
    auth: true,
    permission: 'read',
    query: byProject,
    status: 200,
    handle: ({ deps, principal, query }) => listDataServices(deps, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}',
    summary: 'A data service: status, node, host on the project network, settings and links',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getDataService(deps, principal, params.id!),
  }),
  route({
    method: 'delete',
    path: '/api/data-services/{id}',
    summary:
      'Delete a data service (?confirm=<its name>; ?volume=keep (default) keeps its data volume, remove deletes it); 202 while the worker removes it',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    query: s.deleteDataServiceQuery,
    status: 202,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteDataService(deps, principal, params.id!, query, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/links',
    summary:
      "Link an app service of the same project: its URL arrives as envName (REDIS_URL / DATABASE_URL by default) from the service's next release on",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.createDataServiceLinkInput,
    status: 201,
    handle: ({ deps, principal, params, body, ctx }) =>
      linkDataService(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/links',
    summary: 'The app services a data service is linked to',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => listDataServiceLinks(deps, principal, params.id!),
  }),
  route({
    method: 'delete',
    path: '/api/data-services/{id}/links/{linkId}',
    summary: "Unlink; the env var leaves the service's containers from its next release on",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 204,
    handle: ({ deps, principal, params, ctx }) =>
      unlinkDataService(deps, principal, params.id!, params.linkId!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/rotate-password',
    summary:
      'Rotate the password (202): a new one is generated and sealed, set in the engine and checked (a failure keeps the old one), then linked services are redeployed with the new URL; the old one stops working (Redis: once those redeploys end)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      rotateDataServicePassword(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/move-to-dedicated',
    summary:
      'Move a database on a shared server to a dedicated one (202): a fresh backup, restored into a new dedicated data service, every link moved to it under the same env name, linked services redeployed (health-gated); the shared copy stays, unlinked, until confirm-move. A failure leaves the shared copy linked and `move.step` names the step',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) => requestMove(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/confirm-move',
    summary:
      'Confirm a finished move (202): the shared copy (now unlinked) is deleted with its database and user; the shared server stays',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) => confirmMove(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups',
    summary:
      'Back up now (202): dumped next to the server, streamed compressed and encrypted to the object store, manifest last, then a restore drill',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) => requestBackup(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/backups',
    summary:
      'Backups, newest first: status, sizes, checksum, row counts (or key count) and the newest drill',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => listBackups(deps, principal, params.id!),
  }),
  route({
    method: 'put',
    path: '/api/data-services/{id}/backup-schedule',
    summary: 'When scheduled backups run: five-field UTC cron, at most hourly (nightly by default)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.backupScheduleInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      setBackupSchedule(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'put',
    path: '/api/data-services/{id}/backup-retention',
    summary:
      'How many backups retention keeps: the newest of each of the last N days, weeks and months (14/8/6 by default); the newest whose drill passed is always kept',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.backupRetentionInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      setBackupRetention(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'put',
    path: '/api/data-services/{id}/drill-schedule',
    summary:
      'Which backups are restore-drilled: every_backup (default), or weekly: a scheduled backup only when no backup of the last 7 days has a drill that passed, and always after a failed drill; a backup asked for now is always drilled',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.drillScheduleInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      setDrillSchedule(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/drills',
    summary:
      'Restore drills, newest first: restored into a container with no network and checked against the manifest; RTO and RPO',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => listDrills(deps, principal, params.id!),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/restore',
    summary:
      'Restore a backup into a new data service, or in place (confirm=<its name>; the current state is backed up first); 202',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.restoreBackupInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      restoreBackup(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/backups/{backupId}/download',
    summary:
      "A backup's dump, decrypted as it streams (.sql, pg_restore's format, or .rdb), after its checksum is checked",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 200,
    handle: async ({ deps, principal, params, ctx }) => {
      const { filename, body } = await downloadBackup(
        deps,
        principal,
        params.id!,
        params.backupId!,
        ctx,
        deps.api.maxResponseBytes === undefined
          ? {}
          : { maxResponseBytes: deps.api.maxResponseBytes },
      );
      return new Response(streamOf(body), {
        headers: {
          'content-type': 'application/octet-stream',
          'content-disposition': `attachment; filename="${filename}"`,
        },
      });
    },
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups/{backupId}/download-url',
    summary:
      "Where the object store serves backups itself (the cloud, whose API answers at most 6 MB): a 15-minute URL to the stored object, its SHA-256 and this backup's data key, for a client that checks, decrypts (AES-256-GCM, IV first, tag last) and gunzips as it downloads; 409 no_direct_download elsewhere (GET …/download streams it)",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      backupDownloadUrl(deps, principal, params.id!, params.backupId!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/upgrade',
    summary:
      'Upgrade the server to a newer minor of its release line in place (202): a backup first, then the new image on the same volume, checked; a failure rolls back to the old image. Another release line is a 400',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.upgradeDataServiceInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      requestUpgrade(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups/{backupId}/export',
    summary:
      'Export a completed backup for another install: its manifest and its data key wrapped under your passphrase (the object itself: GET …/object)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.exportBackupInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      exportBackup(deps, principal, params.id!, params.backupId!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/backups/{backupId}/object',
    summary:
      'The stored backup object as it is (still encrypted under its data key): what another install imports with the export. Where the object store serves it directly (the cloud), a 303 to a short-lived URL',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 200,
    handle: async ({ deps, principal, params }) => {
      const object = await backupObject(deps, principal, params.id!, params.backupId!);
      const { filename, bytes } = object;
      if ('url' in object)
        return new Response(null, {
          status: 303,
          headers: { location: object.url, 'cache-control': 'no-store' },
        });
      return new Response(streamOf(object.body), {
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(bytes),
          'content-disposition': `attachment; filename="${filename}"`,
        },
      });
    },
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups/import',
    summary:
      "Import another install's backup into this data service (same engine): the export's JSON and its passphrase; then PUT the object to uploadPath, or, where `upload` is answered (the cloud), PUT it to upload.url and POST upload.completePath",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.importBackupInput,
    status: 201,
    handle: ({ deps, principal, params, body, ctx }) =>
      importBackup(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'put',
    path: '/api/data-services/{id}/backups/{backupId}/object',
    summary:
      "An import's object (application/octet-stream, streamed into the store); 202, then its drill runs",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    streamsBody: true,
    status: 202,
    handle: ({ deps, principal, params, request, ctx }) =>
      uploadBackupObject(
        deps,
        principal,
        params.id!,
        params.backupId!,
        request.body as AsyncIterable<Uint8Array> | null,
        ctx,
      ),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups/{backupId}/object/upload-url',
    summary:
      'A fresh direct upload (URL, headers, completePath) for an import still waiting for its object, where the object store takes it directly (the cloud); 409 elsewhere',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 200,
    handle: ({ deps, principal, params }) =>
      backupUploadUrl(deps, principal, params.id!, params.backupId!),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/backups/{backupId}/object/complete',
    summary:
      'The end of a direct upload: the object is in the store; its size is checked, then its manifest is written and its drill runs (202)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      completeBackupUpload(deps, principal, params.id!, params.backupId!, ctx),
  }),
];

/** An async iterable as a web stream, pulled as the client reads (backpressure). */
function streamOf(body: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await it.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
}
