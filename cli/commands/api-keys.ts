import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { currentOrg } from '../org.ts';
import { json, table } from '../output.ts';

interface ApiKey {
  id: string;
  name: string;
  role: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

const usage = `Usage:
  selfdevop api-keys [list] [--json]
  selfdevop api-keys create NAME [--role viewer|deployer|admin|owner] [--json]
  selfdevop api-keys revoke NAME|ID

create prints the new key once (it is stored hashed): pipe it into your CI's secret
store. A key's role is at most the role of whoever creates it; deployer by default.
revoke stops the key at once in this API process, and within a second everywhere.

Example:
  selfdevop api-keys create github-actions --role deployer`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    role: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg] = positionals;
  if (!['list', 'create', 'revoke'].includes(sub))
    throw new CliError(`unknown api-keys command ${sub}: use list, create or revoke`, 2);
  if (sub !== 'list' && !arg) throw new CliError(`api-keys ${sub} needs a NAME`, 2);
  const api = await client(ctx.env);
  const { orgId } = await currentOrg(api);
  const base = `/api/orgs/${orgId}/api-keys`;
  if (sub === 'create') {
    const k = await api.call<{ id: string; key: string }>('POST', base, {
      name: arg,
      role: values.role ?? 'deployer',
    });
    if (values.json) return (json(ctx.o, k), 0);
    ctx.o.err(`created API key ${arg} (${k.id}); it is shown once:`);
    // The key alone on stdout, so `selfdevop api-keys create ci | gh secret set …` works.
    ctx.o.out(k.key);
    return 0;
  }
  const keys = await api.all<ApiKey>(base);
  if (sub === 'revoke') {
    const live = keys.filter((k) => (k.id === arg || k.name === arg) && !k.revokedAt);
    if (live.length === 0) throw new CliError(`no active API key ${arg}`);
    if (live.length > 1)
      throw new CliError(`several active keys are named ${arg}: pass the key's ID`);
    await api.call('DELETE', `${base}/${live[0]!.id}`);
    ctx.o.out(`revoked API key ${live[0]!.name} (${live[0]!.id})`);
    return 0;
  }
  if (values.json) return (json(ctx.o, keys), 0);
  table(
    ctx.o,
    ['NAME', 'ROLE', 'STARTS WITH', 'STATE', 'CREATED', 'ID'],
    keys.map((k) => [
      k.name,
      k.role,
      `${k.prefix}…`,
      k.revokedAt ? 'revoked' : 'active',
      k.createdAt,
      k.id,
    ]),
    'no API keys yet: selfdevop api-keys create NAME --role deployer',
  );
  return 0;
}

export const apiKeys: Command = {
  name: 'api-keys',
  summary: 'API keys of the org: list, create (shown once), revoke',
  help: usage,
  run,
};
