import type { GitCredential, GitRemote, KeyVault } from '../ports.ts';
import type { Service } from '../models.ts';
import { gitCredentialContext } from './git-source.ts';

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
  return { url: service.git.url, credential };
}
