import type { ApiClient } from './client.ts';
import { CliError } from './config.ts';

/** Who the API says the caller is (GET /api/me). */
export interface Me {
  actorType: 'user' | 'api_key';
  actorId: string;
  userId: string | null;
  orgId: string | null;
  role: string | null;
  orgChoices?: string[];
}

/** The org the credentials act in; a user in several orgs picks one with SELFDEVOP_ORG. */
export async function currentOrg(api: ApiClient): Promise<{ me: Me; orgId: string }> {
  const me = await api.call<Me>('GET', '/api/me');
  if (!me.orgId) {
    throw new CliError(
      me.orgChoices?.length
        ? `these credentials belong to several orgs (${me.orgChoices.join(', ')}): set SELFDEVOP_ORG or log in with --org`
        : 'these credentials belong to no org yet',
    );
  }
  return { me, orgId: me.orgId };
}
