import { CoreError, InvalidInput, isCoreError } from '../errors.ts';
import type { NodeRecord } from '../models.ts';
import type { DockerTarget, KeyVault } from '../ports.ts';
import type { NodeSshInput, NodeTlsInput } from '../schemas.ts';

export type NodeCredentialKind = 'tls' | 'ssh';

/**
 * The AAD a node credential is sealed under (like `<org>:webhook:<id>`). The kind is part
 * of it, so a sealed TLS bundle copied into the SSH column does not open either.
 */
export const nodeCredentialContext = (orgId: string, nodeId: string, kind: NodeCredentialKind) =>
  `${orgId}:node:${nodeId}:${kind}`;

/** A node's stored credentials cannot be opened (wrong key, moved row, damaged value). */
export class NodeCredentialsUnreadable extends CoreError {
  constructor(node: Pick<NodeRecord, 'id' | 'name'>, kind: NodeCredentialKind, reason: string) {
    super(
      'conflict',
      'node_credentials_unreadable',
      `the ${kind} credentials of node ${node.name} could not be opened (${reason}); set them again with PATCH /api/nodes/${node.id}`,
      { nodeId: node.id, kind },
    );
  }
}

const isLoopbackHost = (host: string) => /^(localhost|127(\.[0-9]{1,3}){3})$/i.test(host);

/**
 * Which credentials a docker host takes, as field errors: TLS only for tcp://, SSH only for
 * ssh://, and a tcp:// engine off this machine only with TLS, because plain TCP to a
 * Docker Engine is root on that host for anyone on the network path.
 */
export function credentialProblems(
  dockerHost: string,
  given: { tls?: unknown; ssh?: unknown },
  has: { tls: boolean; ssh: boolean } = {
    tls: given.tls !== undefined,
    ssh: given.ssh !== undefined,
  },
): { field: string; message: string }[] {
  const scheme = dockerHost.slice(0, dockerHost.indexOf('://'));
  const problems: { field: string; message: string }[] = [];
  if (given.tls !== undefined && scheme !== 'tcp') {
    problems.push({
      field: 'tls',
      message: `applies only to a tcp:// docker host, not ${scheme}://`,
    });
  }
  if (given.ssh !== undefined && scheme !== 'ssh') {
    problems.push({
      field: 'ssh',
      message: `applies only to an ssh:// docker host, not ${scheme}://`,
    });
  }
  if (scheme === 'tcp' && !has.tls) {
    const host = dockerHost.slice('tcp://'.length).replace(/:[0-9]+$/, '');
    if (!isLoopbackHost(host)) {
      problems.push({
        field: 'tls',
        message: `is required for tcp://${host}: plain TCP to a Docker Engine gives anyone on the network root on that host; give {ca, cert, key} (port 2376), or use ssh://`,
      });
    }
  }
  if (scheme === 'ssh' && !has.ssh) {
    problems.push({
      field: 'ssh',
      message: 'is required for an ssh:// docker host: {privateKey, hostKey}',
    });
  }
  return problems;
}

/** Throws InvalidInput in the API's field-naming shape when `credentialProblems` finds any. */
export function assertCredentialsFit(...args: Parameters<typeof credentialProblems>): void {
  const issues = credentialProblems(...args);
  if (issues.length > 0) {
    throw new InvalidInput(issues.map((i) => `${i.field}: ${i.message}`).join('; '), { issues });
  }
}

/** Seals each credential given under its own context; an absent one stays as `current`. */
export async function sealNodeCredentials(
  vault: KeyVault,
  node: Pick<NodeRecord, 'orgId' | 'id'>,
  input: { tls?: NodeTlsInput; ssh?: NodeSshInput },
  current: Pick<NodeRecord, 'sealedTls' | 'sealedSsh'> = { sealedTls: null, sealedSsh: null },
): Promise<Pick<NodeRecord, 'sealedTls' | 'sealedSsh'>> {
  const sealedTls = input.tls
    ? await vault.seal(
        JSON.stringify({ ca: input.tls.ca, cert: input.tls.cert, key: input.tls.key }),
        nodeCredentialContext(node.orgId, node.id, 'tls'),
      )
    : current.sealedTls;
  const sealedSsh = input.ssh
    ? await vault.seal(
        JSON.stringify({ privateKey: input.ssh.privateKey, hostKey: input.ssh.hostKey ?? null }),
        nodeCredentialContext(node.orgId, node.id, 'ssh'),
      )
    : current.sealedSsh;
  return { sealedTls, sealedSsh };
}

const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

async function openJson(
  vault: KeyVault,
  node: NodeRecord,
  kind: NodeCredentialKind,
  sealed: string,
): Promise<Record<string, unknown>> {
  let plain: string;
  try {
    plain = await vault.open(sealed, nodeCredentialContext(node.orgId, node.id, kind));
  } catch (e) {
    // An unreachable vault (KMS) passes as it is, so callers may retry it.
    if (isCoreError(e) && e.kind === 'unavailable') throw e;
    // Vault errors name keys and contexts, never the plaintext (which it could not read).
    throw new NodeCredentialsUnreadable(node, kind, e instanceof Error ? e.message : String(e));
  }
  try {
    const parsed: unknown = JSON.parse(plain);
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {
    // Reported below without the text, which may be key material.
  }
  throw new NodeCredentialsUnreadable(node, kind, 'the opened value is not the stored shape');
}

/**
 * How to reach a node's Docker Engine: its host with its TLS or SSH credentials opened
 * from the vault. Throws NodeCredentialsUnreadable when they do not open.
 */
export async function openNodeTarget(vault: KeyVault, node: NodeRecord): Promise<DockerTarget> {
  const target: DockerTarget = {
    dockerHost: node.dockerHost,
    ...(node.kind === 'swarm' ? { swarm: true } : {}),
  };
  if (node.sealedTls) {
    const { ca, cert, key } = await openJson(vault, node, 'tls', node.sealedTls);
    if (!isText(ca) || !isText(cert) || !isText(key))
      throw new NodeCredentialsUnreadable(node, 'tls', 'the opened value lacks ca, cert or key');
    target.tls = { ca, cert, key };
  }
  if (node.sealedSsh) {
    const { privateKey, hostKey } = await openJson(vault, node, 'ssh', node.sealedSsh);
    if (!isText(privateKey) || !(hostKey === null || isText(hostKey))) {
      throw new NodeCredentialsUnreadable(node, 'ssh', 'the opened value lacks privateKey');
    }
    target.ssh = { privateKey, hostKey };
  }
  return target;
}

/**
 * The node's target for work that must never move between machines (`DockerTarget.pinned`):
 * a data service, its volume and the one-offs that read it. A Swarm cluster's is its
 * registered manager's own engine, the one selfdevop talks to.
 */
export async function openPinnedNodeTarget(
  vault: KeyVault,
  node: NodeRecord,
): Promise<DockerTarget> {
  return { ...(await openNodeTarget(vault, node)), pinned: true };
}
