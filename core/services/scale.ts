/**
 * Scale a service environment without a deploy (`POST /api/services/{id}/scale`, `stop`,
 * `start`): the desired count is the service's; the serving release's replicas follow it
 * through a reshape message (core/releases/reshape.ts). A placement that cannot fit is a
 * 409 here, before anything starts.
 */
import * as z from 'zod';
import { InvalidInput, NotFound, ReleaseAlreadyInFlight } from '../errors.ts';
import { maxReplicas, type Release } from '../models.ts';
import { assertCan } from '../roles.ts';
import { slugName } from '../schemas.ts';
import { recordAudit, requireOrg, type Principal, type RequestContext } from '../deps.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { liveReleaseStatuses } from '../edge/live-routes.ts';
import { inFlightReleaseStatuses } from '../models.ts';
import { planReshape, sendReshape } from '../releases/reshape.ts';
import { allNodes, engineCapacities, placedUsage, replicasOf } from '../releases/replicas.ts';

export const scaleServiceInput = z.strictObject({
  replicas: z.number().int().min(0).max(maxReplicas),
  environment: slugName.optional(),
});
export const startServiceInput = z.strictObject({
  replicas: z.number().int().min(1).max(maxReplicas).optional(),
  environment: slugName.optional(),
});
export const stopServiceInput = z.strictObject({ environment: slugName.optional() });

export interface ScaleResult {
  serviceId: string;
  environment: string;
  replicas: number;
  /** The serving release whose replicas change; null when nothing is deployed yet. */
  releaseId: string | null;
  /** Replicas serving now; the change is applied by a worker (`release.scaled` when done). */
  current: number;
}

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field =
    issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(body)');
  throw new InvalidInput(`${field}: ${issue.message}`, { field });
}

/** Sets the desired replicas of a service environment and moves its serving release there. */
export async function scaleService(
  deps: ReleaseDeps,
  principal: Principal,
  serviceId: string,
  input: unknown,
  ctx: RequestContext | null,
  how: 'scale' | 'start' | 'stop' = 'scale',
): Promise<ScaleResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const body =
    how === 'scale'
      ? parse(scaleServiceInput, input)
      : how === 'start'
        ? { replicas: 1, ...parse(startServiceInput, input) }
        : { ...parse(stopServiceInput, input), replicas: 0 };
  const envName = body.environment ?? 'production';
  const found = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    if (!service) throw new NotFound('service', serviceId);
    const environment = await repos.environments.findByName(service.projectId, envName);
    if (!environment) throw new NotFound('environment', envName);
    const inFlight = await repos.releases.latest(service.id, environment.id, [
      ...inFlightReleaseStatuses,
    ]);
    // Its placement was made for the old count; scale once it ends.
    if (inFlight) throw new ReleaseAlreadyInFlight(inFlight.id);
    const live = await repos.releases.latest(service.id, environment.id, [...liveReleaseStatuses]);
    return {
      service,
      environment,
      live: live?.status === 'completed' ? live : null,
      nodes: await allNodes(repos),
      used: await placedUsage(repos),
    };
  });
  const { service, environment, live, nodes, used } = found;
  const capacity = await engineCapacities(deps, nodes);
  // Checked now so the caller hears what does not fit; the worker checks again.
  if (live) planReshape(service, live, body.replicas, [], nodes, capacity, used);
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.services.update(service.id, { replicas: body.replicas });
    await recordAudit(deps, repos, p, ctx, {
      action: `service.${how === 'scale' ? 'scaled' : how === 'start' ? 'started' : 'stopped'}`,
      targetType: 'service',
      targetId: service.id,
      data: { environment: environment.name, from: service.replicas, replicas: body.replicas },
    });
  });
  if (live)
    await sendReshape(deps, live, {
      replicas: body.replicas,
      avoid: [],
      reason: how === 'scale' ? `scale to ${body.replicas}` : how,
    });
  return {
    serviceId: service.id,
    environment: environment.name,
    replicas: body.replicas,
    releaseId: live?.id ?? null,
    current: live ? servingCount(live) : 0,
  };
}

const servingCount = (r: Release) => replicasOf(r).filter((x) => x.health !== 'stopped').length;
