import type { ApiClient } from '../client.ts';
import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { isId } from '../resolve.ts';

export interface Invite {
  id: string;
  email: string;
  role: string;
  status: 'pending' | 'expired' | 'accepted' | 'revoked';
  expiresAt: string;
  createdAt: string;
}

/** The pending invite to an address, or the invite with that id. */
async function findInvite(api: ApiClient, ref: string | undefined): Promise<Invite> {
  if (!ref) throw new CliError('which invite? pass the invited email or the invite id', 2);
  const items = await api.all<Invite>('/api/invites');
  const found = isId(ref, 'inv')
    ? items.find((i) => i.id === ref)
    : items.find((i) => i.email === ref.toLowerCase() && i.status === 'pending');
  if (!found) throw new CliError(`no pending invite for ${ref}: see selfdevop invites`);
  return found;
}

/** The token of an invite link, or the token itself. */
function tokenOf(ref: string | undefined): string {
  if (!ref) throw new CliError('invites accept needs the TOKEN or the link from the email', 2);
  if (/^https?:\/\//.test(ref)) {
    const token = new URL(ref).searchParams.get('token');
    if (!token) throw new CliError('that link carries no invite token', 2);
    return token;
  }
  return ref;
}

const usage = `Usage:
  selfdevop invites [list] [--json]
  selfdevop invites create EMAIL --role ROLE [--json]
  selfdevop invites revoke EMAIL|INVITE_ID
  selfdevop invites accept TOKEN|LINK

create emails EMAIL a link that joins this org with ROLE (at most your own); it works once
and expires after 7 days. Someone without an account signs up from the link; someone
signed in accepts with invites accept (the whole link will do).

Example:
  selfdevop invites create ann@example.com --role deployer`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    role: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', ref] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'list': {
      const items = await api.all<Invite>('/api/invites');
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['EMAIL', 'ROLE', 'STATUS', 'EXPIRES', 'ID'],
        items.map((i) => [i.email, i.role, i.status, i.expiresAt, i.id]),
        'no invites yet: selfdevop invites create EMAIL --role ROLE',
      );
      return 0;
    }
    case 'create': {
      if (!ref) throw new CliError('invites create needs an EMAIL', 2);
      if (!values.role)
        throw new CliError('invites create needs --role (owner, admin, deployer or viewer)', 2);
      const i = await api.call<Invite>('POST', '/api/invites', { email: ref, role: values.role });
      if (values.json) return (json(ctx.o, i), 0);
      ctx.o.out(
        `invited ${i.email} as ${i.role}; the emailed link works once, until ${i.expiresAt}`,
      );
      return 0;
    }
    case 'revoke': {
      const i = await findInvite(api, ref);
      await api.call('DELETE', `/api/invites/${i.id}`);
      ctx.o.out(`revoked the invite to ${i.email}: its link no longer works`);
      return 0;
    }
    case 'accept': {
      const joined = await api.call<{ org: { id: string; name: string }; role: string }>(
        'POST',
        '/api/invites/accept',
        { token: tokenOf(ref) },
      );
      ctx.o.out(
        `joined ${joined.org.name} (${joined.org.id}) as ${joined.role}; pick it with SELFDEVOP_ORG=${joined.org.id}`,
      );
      return 0;
    }
    default:
      throw new CliError(`unknown invites command ${sub}: use list, create, revoke or accept`, 2);
  }
}

export const invites: Command = {
  name: 'invites',
  summary: 'Invite people by email: list, create, revoke, accept',
  help: usage,
  run,
};
