import { CoreError, NotFound, isCoreError } from '../errors.ts';
import type { DataEngine, DataService } from '../models.ts';
import { openPinnedNodeTarget } from '../nodes/credentials.ts';
import type { ContainerSpec, DockerTarget, EventQueue } from '../ports.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { insertRelease, queueRelease } from '../releases/create.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import {
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import {
  dataContainerName,
  dataEndpoint,
  dataServiceLabels,
  dataServiceSecretContext,
  planDataContainer,
  planReadinessCheck,
} from './plan.ts';

/**
 * Password rotation (issue 15): one action gives a data service a new password, sets it in
 * the engine, re-links and redeploys the linked apps, and retires the old one.
 *
 * Order, so that a failure anywhere leaves a working password on record:
 * 1. the API seals the new password into `pendingSealedPassword` (the engine untouched);
 * 2. the worker sets it in the engine, authenticated with the current one (PostgreSQL
 *    `ALTER USER`, MariaDB `SET PASSWORD`; Redis `ACL SETUSER default >new`, which *adds* it,
 *    so both answer until the apps have moved);
 * 3. it checks that the new one answers, from a one-off on the project network; if not, the
 *    engine is put back (the old one still answers) and the rotation fails, audited;
 * 4. only then the record switches (`sealedPassword` ← the new one) and the linked services'
 *    live releases are redeployed (same image), their new containers reading the new URL;
 * 5. Redis only: once those releases have ended, the server is recreated from the new
 *    password (its config is written from the container's env at every start, so a restart
 *    would bring the old password back otherwise) and only the new one answers.
 * A worker that dies between 2 and 4 is redelivered the message: it asks the server which
 * password it takes and carries on from there.
 */

type Deps = CoreDeps & { queue: EventQueue };

/** Asks for a new password (202): the worker sets it, checks it, then redeploys linked apps. */
export async function rotateDataServicePassword(
  deps: Deps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<{ dataServiceId: string; status: 'rotating' }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const password = deps.ids.newSecret(24).replace(/[^A-Za-z0-9]/g, 'x');
  const sealed = await deps.vault.seal(password, dataServiceSecretContext(p.orgId, id));
  const rotationId = deps.ids.newId('rot');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    if (ds.status !== 'ready')
      throw new CoreError(
        'conflict',
        'data_service_not_ready',
        `data service ${ds.name} is ${ds.status}; its password can be rotated once it is ready`,
      );
    if (ds.pendingSealedPassword)
      throw new CoreError(
        'conflict',
        'rotation_in_progress',
        `data service ${ds.name} is already rotating its password; wait for data_service.password_rotated or data_service.rotation_failed`,
      );
    await repos.dataServices.update(id, {
      pendingSealedPassword: sealed,
      updatedAt: deps.clock.now().toISOString(),
    });
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.rotation_requested',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, rotationId },
    });
  });
  const message: DataServiceWorkMessage = { orgId: p.orgId, dataServiceId: id, op: 'rotate' };
  try {
    await deps.queue.send(dataServiceWorkQueue, message, {
      idempotencyKey: `${id}:rotate:${rotationId}`,
      group: id,
      maxAttempts: 5,
    });
  } catch (e) {
    // Nothing would pick it up: drop the pending password so a later rotation is not refused.
    await deps.store.withOrg(p.orgId, (repos) =>
      repos.dataServices.update(id, { pendingSealedPassword: null }),
    );
    throw e;
  }
  return { dataServiceId: id, status: 'rotating' };
}

/**
 * The one-off that sets `next` in the engine, authenticated with `current`. The new password
 * reaches the client on stdin through the shell's printf builtin: never on a command line.
 * Passwords are generated alphanumeric, so quoting them in SQL is safe.
 */
export function planPasswordChange(
  d: DataService,
  current: string,
  next: string,
  mode: 'add' | 'only' = 'add',
): ContainerSpec {
  // On a shared server the data service's own user changes its own password.
  const { host, user, database } = dataEndpoint(d);
  const base = planReadinessCheck(d, current);
  const scripts: Record<DataEngine, { sh: string; env: Record<string, string> }> = {
    postgres: {
      sh: `printf "ALTER USER ${user} PASSWORD '%s';\\n" "$NEXT_PASSWORD" | psql -h ${host} -U ${user} -d ${database} -v ON_ERROR_STOP=1 -q`,
      env: { PGPASSWORD: current },
    },
    mariadb: {
      sh: `printf "SET PASSWORD = PASSWORD('%s');\\n" "$NEXT_PASSWORD" | mariadb -h ${host} -u ${user} ${database}`,
      env: { MYSQL_PWD: current },
    },
    // `>p` adds a password, so both answer; `resetpass >p` leaves only p.
    redis: {
      sh: `out=$(printf 'ACL SETUSER default on ${mode === 'only' ? 'resetpass ' : ''}>%s\\n' "$NEXT_PASSWORD" | redis-cli -h ${host} -p 6379); echo "$out"; [ "$out" = OK ]`,
      env: { REDISCLI_AUTH: current },
    },
  };
  const s = scripts[d.engine];
  return {
    name: `${host}-rotate`,
    image: base.image,
    env: { ...s.env, NEXT_PASSWORD: next },
    labels: { ...dataServiceLabels(d), 'selfdevop.role': 'data-check' },
    entrypoint: ['sh', '-c', s.sh],
    restartPolicy: 'no',
    network: base.network!,
  };
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Whether the server answers an authenticated query with `password` (from the project network). */
async function answers(
  deps: DataServiceDeps,
  target: DockerTarget,
  ds: DataService,
  password: string,
): Promise<boolean> {
  const r = await deps.runtime.runOnce(target, planReadinessCheck(ds, password), 30_000);
  return r.exitCode === 0;
}

/** Runs one password change; throws naming the engine's answer (passwords masked). */
async function change(
  deps: DataServiceDeps,
  target: DockerTarget,
  ds: DataService,
  current: string,
  next: string,
  mode: 'add' | 'only' = 'add',
): Promise<void> {
  const r = await deps.runtime.runOnce(target, planPasswordChange(ds, current, next, mode), 60_000);
  if (r.exitCode !== 0)
    throw new Error(
      `the engine refused the new password (exit ${r.exitCode}): ${
        r.output
          .trim()
          .split('\n')
          .slice(-2)
          .join(' | ')
          .replaceAll(current, '***')
          .replaceAll(next, '***') || 'no output'
      }`,
    );
}

/** Which password the server takes; what a redelivered rotation asks first. */
export async function handleRotation(
  deps: DataServiceDeps,
  ds: DataService,
  m: DataServiceWorkMessage,
): Promise<void> {
  if (m.op === 'rotate-finish') return finishRedis(deps, ds, m);
  if (!ds.pendingSealedPassword) return; // done (or given up) by an earlier delivery
  const context = dataServiceSecretContext(ds.orgId, ds.id);
  const old = await deps.vault.open(ds.sealedPassword, context);
  const next = await deps.vault.open(ds.pendingSealedPassword, context);
  let target: DockerTarget;
  try {
    const node = await deps.store.withOrg(ds.orgId, (r) => r.nodes.get(ds.nodeId));
    if (!node) throw new Error(`node ${ds.nodeId} is gone`);
    target = await openPinnedNodeTarget(deps.vault, node);
    if (ds.status !== 'ready') throw new Error(`the data service is ${ds.status}, not ready`);
    try {
      await change(deps, target, ds, old, next);
    } catch (e) {
      // A redelivery after the engine took the new password (and the old one stopped): go on.
      if (!(await answers(deps, target, ds, next))) throw e;
    }
    if (!(await answers(deps, target, ds, next))) {
      // Put the engine back where the record is: the old password must keep working.
      await change(deps, target, ds, next, old).catch(() => undefined);
      throw new Error('the new password did not answer after it was set; the old one was kept');
    }
  } catch (e) {
    return rotationFailed(deps, ds, messageOf(e).replaceAll(old, '***').replaceAll(next, '***'));
  }
  const services = await commitRotation(deps, ds);
  const redeployed = await redeployLinked(deps, ds, services);
  await deps.store.withOrg(ds.orgId, (repos) =>
    recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.password_rotated',
      targetType: 'data_service',
      targetId: ds.id,
      data: {
        name: ds.name,
        engine: ds.engine,
        releases: redeployed.releases.map((r) => r.releaseId),
        notRedeployed: redeployed.skipped,
        // PostgreSQL and MariaDB hold one password per user: the old one stopped at the switch.
        oldPassword: ds.engine === 'redis' ? 'retired once the apps are redeployed' : 'stopped',
      },
    }),
  );
  if (ds.engine === 'redis')
    await deps.queue?.send(
      dataServiceWorkQueue,
      {
        orgId: ds.orgId,
        dataServiceId: ds.id,
        op: 'rotate-finish',
        releaseIds: redeployed.releases.map((r) => r.releaseId),
        attemptsLeft: finishChecks,
      } satisfies DataServiceWorkMessage,
      { group: ds.id, delaySeconds: finishDelaySeconds, maxAttempts: 3 },
    );
}

/** Redis's finish waits for the redeploys: this many checks, `finishDelaySeconds` apart. */
const finishChecks = 60;
const finishDelaySeconds = 10;

async function commitRotation(deps: DataServiceDeps, ds: DataService): Promise<string[]> {
  return deps.store.withOrg(ds.orgId, async (repos) => {
    const now = await repos.dataServices.get(ds.id);
    if (!now?.pendingSealedPassword) return [];
    await repos.dataServices.update(ds.id, {
      sealedPassword: now.pendingSealedPassword,
      pendingSealedPassword: null,
      passwordRotatedAt: deps.clock.now().toISOString(),
      updatedAt: deps.clock.now().toISOString(),
    });
    const links = await repos.dataServiceLinks.list({ dataServiceId: ds.id });
    return [...new Set(links.map((l) => l.serviceId))];
  });
}

async function rotationFailed(deps: DataServiceDeps, ds: DataService, reason: string) {
  deps.logger.error({ dataServiceId: ds.id, reason }, 'password rotation failed');
  await deps.store.withOrg(ds.orgId, async (repos) => {
    await repos.dataServices.update(ds.id, {
      pendingSealedPassword: null,
      updatedAt: deps.clock.now().toISOString(),
    });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.rotation_failed',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, reason, password: 'unchanged: the old one still works' },
    });
  });
}

/** The release engine's ports, where this worker has them (both modes' workers do). */
const canDeploy = (deps: DataServiceDeps): deps is DataServiceDeps & ReleaseDeps =>
  'edge' in deps &&
  'config' in deps &&
  typeof deps.config === 'object' &&
  'edgeDomain' in deps.config;

/**
 * Redeploys each linked service's live releases (every environment with one) with the same
 * image: the candidates read the links at their start, so they carry the new URL. A service
 * with a release in flight is left to it (its next step reads the new URL if it has not
 * started its candidate yet) and named in `skipped`.
 */
export async function redeployLinked(
  deps: DataServiceDeps,
  ds: DataService,
  serviceIds: string[],
  reason = `password rotation of data service ${ds.name}`,
): Promise<{ releases: { releaseId: string; serviceId: string }[]; skipped: string[] }> {
  const releases: { releaseId: string; serviceId: string }[] = [];
  const skipped: string[] = [];
  if (serviceIds.length === 0) return { releases, skipped };
  if (!canDeploy(deps))
    return { releases, skipped: serviceIds.map((s) => `${s}: cannot deploy here`) };
  for (const serviceId of serviceIds) {
    const envs = await deps.store.withOrg(ds.orgId, async (repos) => {
      const service = await repos.services.get(serviceId);
      if (!service) return [];
      const all = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
      const live = [];
      for (const env of all.items) {
        const rel = await repos.releases.latest(serviceId, env.id, [
          'completed',
          'traffic_shifted',
        ]);
        if (rel) live.push({ env, rel });
      }
      return live;
    });
    for (const { env, rel } of envs) {
      try {
        const release = await deps.store.withOrg(ds.orgId, (repos) =>
          insertRelease(
            deps,
            repos,
            {
              serviceId,
              environmentId: env.id,
              image: rel.image,
              gitSha: rel.gitSha,
              gitRef: rel.gitSha ?? rel.gitRef ?? null,
              kind: 'deploy',
            },
            dataWorkerActor,
            null,
            { reason },
          ),
        );
        await queueRelease(deps, release);
        releases.push({ releaseId: release.id, serviceId });
      } catch (e) {
        skipped.push(`${serviceId}/${env.name}: ${isCoreError(e) ? e.message : messageOf(e)}`);
      }
    }
  }
  return { releases, skipped };
}

/**
 * Redis: once the redeploys have ended, the server is recreated from the record's password
 * (only it answers from then on). A redeploy that failed leaves its service on the old
 * password, so the old one is kept and the audit says why.
 */
async function finishRedis(
  deps: DataServiceDeps,
  ds: DataService,
  m: DataServiceWorkMessage,
): Promise<void> {
  // Deleted or failed meanwhile: nothing of it to recreate.
  if (ds.status !== 'ready') return;
  const ids = m.releaseIds ?? [];
  const rels = await deps.store.withOrg(ds.orgId, async (repos) =>
    Promise.all(ids.map((id) => repos.releases.get(id))),
  );
  const ended = (s: string) => s === 'completed' || s === 'failed' || s === 'rolled_back';
  const pending = rels.filter((r) => r && !ended(r.status));
  const left = m.attemptsLeft ?? 0;
  if (pending.length > 0 && left > 0) {
    await deps.queue?.send(
      dataServiceWorkQueue,
      { ...m, attemptsLeft: left - 1 },
      { group: ds.id, delaySeconds: finishDelaySeconds, maxAttempts: 3 },
    );
    return;
  }
  const failed = rels.filter((r) => r && r.status !== 'completed');
  if (failed.length > 0) {
    await deps.store.withOrg(ds.orgId, (repos) =>
      recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.rotation_incomplete',
        targetType: 'data_service',
        targetId: ds.id,
        data: {
          name: ds.name,
          reason: `releases ${failed.map((r) => `${r!.id} (${r!.status})`).join(', ')} did not complete; the old password keeps working until they do (rotate again)`,
        },
      }),
    );
    return;
  }
  const node = await deps.store.withOrg(ds.orgId, (r) => r.nodes.get(ds.nodeId));
  if (!node) return;
  const target = await openPinnedNodeTarget(deps.vault, node);
  const password = await deps.vault.open(
    ds.sealedPassword,
    dataServiceSecretContext(ds.orgId, ds.id),
  );
  // Only the new one from now on, at once (the engine's ACL) and across restarts (the env).
  await change(deps, target, ds, password, password, 'only');
  // Without persistence Redis saves nothing when it stops: keep the data across the recreate.
  if ((ds.settings.persistence ?? 'rdb') === 'none')
    await deps.runtime.runOnce(
      target,
      {
        ...planPasswordChange(ds, password, password),
        entrypoint: ['sh', '-c', `redis-cli -h ${dataContainerName(ds)} -p 6379 SAVE`],
      },
      120_000,
    );
  await deps.runtime.remove(target, dataContainerName(ds));
  await deps.runtime.start(target, planDataContainer(ds, password));
  for (let i = 0; i < 60 && !(await answers(deps, target, ds, password)); i++)
    await deps.clock.sleep(1000);
  await deps.store.withOrg(ds.orgId, (repos) =>
    recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.old_password_retired',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, releases: ids },
    }),
  );
}
