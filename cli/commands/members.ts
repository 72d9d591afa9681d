import type { ApiClient } from '../client.ts';
import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { isId } from '../resolve.ts';

export interface Member {
  userId: string;
  email: string;
  role: string;
  createdAt: string;
}

const roleNames = ['owner', 'admin', 'deployer', 'viewer'];

/** A member by email or user id, among the org's members. */
async function findMember(api: ApiClient, ref: string | undefined): Promise<Member> {
  if (!ref) throw new CliError('which member? pass their email or user id', 2);
  const { items } = await api.call<{ items: Member[] }>('GET', '/api/members');
  const found = isId(ref, 'usr')
    ? items.find((m) => m.userId === ref)
    : items.find((m) => m.email === ref.toLowerCase());
  if (!found)
    throw new CliError(
      `${ref} is not a member of this org: see selfdevop members, or invite them with selfdevop invites create EMAIL --role ROLE`,
    );
  return found;
}

const usage = `Usage:
  selfdevop members [list] [--json]
  selfdevop members set-role EMAIL|USER_ID ROLE
  selfdevop members remove EMAIL|USER_ID
  selfdevop members leave
  selfdevop members transfer EMAIL|USER_ID

The people of the org and their roles (owner, admin, deployer, viewer). Admins and owners
change roles up to their own and remove members at or below it; anyone may leave. transfer
makes another member the owner and you an admin. The last owner can neither leave nor be
demoted: transfer ownership first. People join with selfdevop invites.

Example:
  selfdevop members set-role ann@example.com deployer`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, { json: { type: 'boolean' } });
  const [sub = 'list', ref, role] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'list': {
      const { items } = await api.call<{ items: Member[] }>('GET', '/api/members');
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['EMAIL', 'ROLE', 'USER ID', 'JOINED'],
        items.map((m) => [m.email, m.role, m.userId, m.createdAt]),
        'no members',
      );
      return 0;
    }
    case 'set-role': {
      if (!role || !roleNames.includes(role))
        throw new CliError(`members set-role needs a ROLE: one of ${roleNames.join(', ')}`, 2);
      const m = await findMember(api, ref);
      const changed = await api.call<Member>('PATCH', `/api/members/${m.userId}`, { role });
      ctx.o.out(`${changed.email} is now ${changed.role} (was ${m.role})`);
      return 0;
    }
    case 'rm':
    case 'remove': {
      const m = await findMember(api, ref);
      await api.call('DELETE', `/api/members/${m.userId}`);
      ctx.o.out(`removed ${m.email} from the org`);
      return 0;
    }
    case 'leave': {
      const me = await api.call<{ userId: string | null; orgId: string | null }>('GET', '/api/me');
      if (!me.userId) throw new CliError('an API key belongs to its org; it cannot leave it', 2);
      await api.call('DELETE', `/api/members/${me.userId}`);
      ctx.o.out(`you left org ${me.orgId}`);
      return 0;
    }
    case 'transfer': {
      const m = await findMember(api, ref);
      await api.call('POST', `/api/members/${m.userId}/transfer-ownership`);
      ctx.o.out(`${m.email} now owns the org; you are an admin`);
      return 0;
    }
    default:
      throw new CliError(
        `unknown members command ${sub}: use list, set-role, remove, leave or transfer`,
        2,
      );
  }
}

export const members: Command = {
  name: 'members',
  summary: 'People of the org: list, set-role, remove, leave, transfer',
  help: usage,
  run,
};
