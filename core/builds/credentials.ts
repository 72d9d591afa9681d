import type { GitCredential, GitRemote, KeyVault, Store } from '../ports.ts';
import type { Service } from '../models.ts';
import { recordAudit, type CoreDeps } from '../deps.ts';
import { gitCredentialContext, sshAuthority } from './git-source.ts';
import { hostKeys } from './host-keys.ts';

/**
 * The repository of a service with its credential opened from the vault, for one fetch.
 * The plain credential lives only in the returned object: never logged, never stored.
 */
export async function openGitRemote(
  vault: KeyVault,
  service: Pick<Service, 'id' | 'orgId' | 'git' | 'sealedGitCredential'>,
): Promise<GitRemote> {
  if (!service.git) throw new Error(`service ${service.id} has no git source`);
  let credential: GitCredential | null = null;
  if (service.sealedGitCredential) {
    const opened = JSON.parse(
      await vault.open(
        service.sealedGitCredential,
        gitCredentialContext(service.orgId, service.id),
      ),
    ) as { token?: string; privateKey?: string };
    if (opened.token) credential = { token: opened.token };
    else if (opened.privateKey) credential = { privateKey: opened.privateKey };
  }
  return { url: service.git.url, credential, knownHosts: service.git.knownHosts ?? null };
}

/** Who pins a host key taken on first use: the platform, on the service's behalf. */
export const hostKeyPinActor = { actorType: 'system', actorId: 'git-host-keys' } as const;

/**
 * Trust on first use: after a contact over ssh with no pinned key succeeded, the key the
 * server presented becomes the service's pin (`git.knownHosts`), audited with its
 * fingerprints, and every later fetch requires it. Kept only while the service still
 * points at that server and has no pin (a person's PATCH meanwhile wins). The remote then
 * enforces it for the rest of its use. Answers the fingerprints pinned, or none.
 */
export async function pinLearnedHostKeys(
  deps: Pick<CoreDeps, 'ids' | 'clock' | 'events'> & { store: Store },
  orgId: string,
  serviceId: string,
  remote: GitRemote,
): Promise<string[]> {
  const learned = remote.learnedHostKeys;
  if (!learned) return [];
  remote.knownHosts = learned;
  delete remote.learnedHostKeys;
  const keys = hostKeys(learned);
  if (keys.length === 0) return [];
  return deps.store.withOrg(orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    const git = service?.git;
    if (!git || git.knownHosts || sshAuthority(git.url) !== sshAuthority(remote.url)) return [];
    await repos.services.update(serviceId, { git: { ...git, knownHosts: learned } });
    const fingerprints = keys.map((k) => `${k.type} ${k.fingerprint}`);
    await recordAudit(deps, repos, hostKeyPinActor, null, {
      action: 'service.git_host_key_pinned',
      targetType: 'service',
      targetId: serviceId,
      data: { host: sshAuthority(git.url), hostKeys: fingerprints },
    });
    return fingerprints;
  });
}
