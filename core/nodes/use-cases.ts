import { CoreError, NotFound } from '../errors.ts';
import type { NodeRecord, Page, PageRequest } from '../models.ts';
import { assertCan } from '../roles.ts';
import type { CreateNodeInput, UpdateNodeInput } from '../schemas.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { isOperator } from '../auth/use-cases.ts';
import { assertCredentialsFit, sealNodeCredentials } from './credentials.ts';
import { hostRefusal, nodeAddressProblems, type AddressPolicy } from './address.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { retryUnplaced } from './unplaced.ts';

/** What the API shows of a node: credentials are write-only, so only whether each is set. */
export type NodeView = Omit<NodeRecord, 'sealedTls' | 'sealedSsh'> & {
  tls: { configured: boolean };
  ssh: { configured: boolean };
};

export function nodeView(node: NodeRecord): NodeView {
  const { sealedTls, sealedSsh, ...rest } = node;
  return {
    ...rest,
    tls: { configured: sealedTls !== null },
    ssh: { configured: sealedSsh !== null },
  };
}

/**
 * What a node's registrar may use. The operator's machine (a local socket, loopback) is
 * the operator's alone; tenants get remote engines at public addresses, and private ones
 * only where the installation lets them (a self-hosted team's network, not a SaaS's).
 */
export function nodeAddressPolicy(
  deps: Pick<CoreDeps, 'config'>,
  operator: boolean,
): AddressPolicy {
  return {
    local: operator,
    private: operator || (deps.config.tenantPrivateNodes ?? false),
    // A name the edge resolves could later point anywhere: tenants give a literal address.
    names: operator,
  };
}

/** A node registration the policy refuses, with each field and its reason. */
export class NodeAddressRefused extends CoreError {
  constructor(issues: { field: string; message: string }[]) {
    super(
      'invalid',
      'node_address_refused',
      issues.map((i) => `${i.field}: ${i.message}`).join('; '),
      { issues },
    );
  }
}

function assertNodeAddressAllowed(
  input: { dockerHost: string; address: string },
  policy: AddressPolicy,
): void {
  const issues = nodeAddressProblems(input, policy);
  if (issues.length > 0) throw new NodeAddressRefused(issues);
}

const kindsOf = (input: { tls?: unknown; ssh?: unknown }) =>
  (['tls', 'ssh'] as const).filter((k) => input[k] !== undefined);

export async function createNode(
  /** With `release`, replicas that found no place are retried on the new node at once. */
  deps: CoreDeps & { release?: Pick<ReleaseDeps, 'store' | 'queue' | 'config' | 'ids'> },
  principal: Principal,
  input: CreateNodeInput,
  ctx: RequestContext,
): Promise<NodeView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  assertCredentialsFit(input.dockerHost, input);
  const operator = await isOperator(deps, p);
  assertNodeAddressAllowed(input, nodeAddressPolicy(deps, operator));
  const id = deps.ids.newId('node');
  const now = deps.clock.now().toISOString();
  const sealed = await sealNodeCredentials(deps.vault, { orgId: p.orgId, id }, input);
  const credentials = kindsOf(input);
  const node: NodeRecord = {
    id,
    orgId: p.orgId,
    name: input.name,
    kind: input.kind ?? 'engine',
    dockerHost: input.dockerHost,
    address: input.address,
    labels: input.labels ?? {},
    drainMode: false,
    createdAt: now,
    ...sealed,
    credentialsUpdatedAt: credentials.length > 0 ? now : null,
    operatorRegistered: operator,
    // Until the workers' first check answers.
    reachability: 'unknown',
    reachabilitySince: null,
    lastSeenAt: null,
    missedChecks: 0,
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.nodes.insert(node);
    await recordAudit(deps, repos, p, ctx, {
      action: 'node.created',
      targetType: 'node',
      targetId: node.id,
      data: {
        name: node.name,
        kind: node.kind,
        dockerHost: node.dockerHost,
        address: node.address,
        credentials,
        operatorRegistered: operator,
      },
    });
  });
  // New capacity: services short of their replicas (nowhere to place them before) get them
  // now; the reshape places them wherever they fit best, health-gated as ever.
  // The node is registered either way: a retry that cannot be queued is logged, and the next
  // node change (or a scale) tries again.
  if (deps.release)
    await retryUnplaced(deps.release, p.orgId, `node ${node.name} registered`).catch((e: unknown) =>
      deps.logger.warn(
        { orgId: p.orgId, nodeId: node.id, err: e instanceof Error ? e.message : String(e) },
        'replicas that found no place were not retried on the new node',
      ),
    );
  return nodeView(node);
}

/** When a node's changed field takes effect (see `updateNode`). */
export const nodeFieldApplies = {
  name: 'now',
  labels: 'now',
  // The edge and the probe reach a release at the address it was started with.
  address: 'next_release',
  tls: 'now',
  ssh: 'now',
} as const satisfies Record<keyof UpdateNodeInput, 'now' | 'next_release'>;

/**
 * Changes a node (`PATCH /api/nodes/{id}`): its name and labels at once; its address, judged
 * by the same rules as at registration for the caller, for releases started from now on;
 * its TLS or SSH credentials (rotation), used from the next connection, the old material
 * overwritten, not kept. Drain has its own verbs.
 */
export async function updateNode(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: UpdateNodeInput,
  ctx: RequestContext,
): Promise<NodeView & { applies: Partial<Record<keyof UpdateNodeInput, 'now' | 'next_release'>> }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const operator = input.address !== undefined ? await isOperator(deps, p) : false;
  const node = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  // Nothing is removed by a patch, so only the scheme has to fit what is given.
  assertCredentialsFit(node.dockerHost, input, { tls: true, ssh: true });
  if (input.address !== undefined && input.address !== node.address) {
    // The engine host is not changing: only the new address is judged, by the caller's
    // rights (an operator's node does not lend a tenant the right to a loopback address).
    const refusal = hostRefusal(input.address, nodeAddressPolicy(deps, operator));
    if (refusal) throw new NodeAddressRefused([{ field: 'address', message: refusal }]);
  }
  const credentials = kindsOf(input);
  const sealed =
    credentials.length > 0 ? await sealNodeCredentials(deps.vault, node, input, node) : null;
  const changed = Object.keys(input) as (keyof UpdateNodeInput)[];
  return deps.store.withOrg(p.orgId, async (repos) => {
    let next: NodeRecord = { ...node };
    const fields: Partial<Pick<NodeRecord, 'name' | 'labels' | 'address'>> = {};
    if (input.name !== undefined) fields.name = input.name;
    if (input.labels !== undefined) fields.labels = input.labels;
    if (input.address !== undefined) fields.address = input.address;
    if (Object.keys(fields).length > 0) {
      await repos.nodes.update(id, fields);
      next = { ...next, ...fields };
    }
    if (sealed) {
      const credentialsUpdatedAt = deps.clock.now().toISOString();
      await repos.nodes.setCredentials(id, { ...sealed, credentialsUpdatedAt });
      next = { ...next, ...sealed, credentialsUpdatedAt };
      await recordAudit(deps, repos, p, ctx, {
        action: 'node.credentials_rotated',
        targetType: 'node',
        targetId: id,
        data: { name: next.name, credentials },
      });
    }
    if (Object.keys(fields).length > 0)
      await recordAudit(deps, repos, p, ctx, {
        action: 'node.updated',
        targetType: 'node',
        targetId: id,
        data: {
          fields: Object.keys(fields),
          ...(fields.name ? { name: { from: node.name, to: fields.name } } : {}),
          ...(fields.labels ? { labels: fields.labels } : {}),
          ...(fields.address ? { address: { from: node.address, to: fields.address } } : {}),
        },
      });
    return {
      ...nodeView(next),
      applies: Object.fromEntries(changed.map((k) => [k, nodeFieldApplies[k]])),
    };
  });
}

export async function getNode(deps: CoreDeps, principal: Principal, id: string): Promise<NodeView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const node = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  return nodeView(node);
}

export async function listNodes(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
): Promise<Page<NodeView>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const nodes = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.list(page));
  return { ...nodes, items: nodes.items.map(nodeView) };
}
