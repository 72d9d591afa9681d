import type { KeyVault, Store } from '../ports.ts';
import { connectionUrl, dataServiceSecretContext, projectNetworkName } from './plan.ts';

/**
 * What the data services linked to a service hand its containers: each link's URL under its
 * env name, and the project network they are reachable on (null when nothing is linked).
 * Read at every release step, so a link made now arrives from the next release on.
 */
export async function linkedDataEnv(
  deps: { store: Store; vault: KeyVault },
  orgId: string,
  serviceId: string,
): Promise<{ env: Record<string, string>; passwords: string[]; network: string | null }> {
  const linked = await deps.store.withOrg(orgId, async (repos) => {
    const links = await repos.dataServiceLinks.list({ serviceId });
    const out = [];
    for (const link of links) {
      const ds = await repos.dataServices.get(link.dataServiceId);
      if (ds) out.push({ link, ds });
    }
    return out;
  });
  const env: Record<string, string> = {};
  const passwords: string[] = [];
  let network: string | null = null;
  for (const { link, ds } of linked) {
    const password = await deps.vault.open(
      ds.sealedPassword,
      dataServiceSecretContext(ds.orgId, ds.id),
    );
    env[link.envName] = connectionUrl(ds, password);
    passwords.push(password);
    network = projectNetworkName(ds.projectId);
  }
  return { env, passwords, network };
}
