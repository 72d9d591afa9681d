import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { currentOrg } from '../org.ts';
import { json } from '../output.ts';

const usage = `Usage:
  selfdevop orgs [show] [--json]
  selfdevop orgs create NAME [--json]

show names the org these credentials act in and the role they hold there. create makes
a new org owned by the signed-in user (an API key belongs to one org and cannot).
A user in several orgs picks one with SELFDEVOP_ORG or selfdevop login --org.`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, { json: { type: 'boolean' } });
  const [sub = 'show', name] = positionals;
  const api = await client(ctx.env);
  if (sub === 'create') {
    if (!name) throw new CliError('orgs create needs a NAME', 2);
    const org = await api.call<{ id: string; name: string }>('POST', '/api/orgs', { name });
    if (values.json) return (json(ctx.o, org), 0);
    ctx.o.out(`created org ${org.name} (${org.id}); you own it`);
    return 0;
  }
  if (sub !== 'show') throw new CliError(`unknown orgs command ${sub}: use show or create`, 2);
  const { me, orgId } = await currentOrg(api);
  const org = await api.call<{ id: string; name: string; createdAt: string }>(
    'GET',
    `/api/orgs/${orgId}`,
  );
  if (values.json) return (json(ctx.o, { ...org, role: me.role, actorType: me.actorType }), 0);
  ctx.o.out(
    `org ${org.name} (${org.id}), created ${org.createdAt}; ${me.actorType === 'api_key' ? 'this API key' : 'you'} act as ${me.role}`,
  );
  return 0;
}

export const orgs: Command = {
  name: 'orgs',
  summary: 'The org these credentials act in; create another',
  help: usage,
  run,
};
