import { client, parse, readSecret, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';

interface Registry {
  id: string;
  server: string;
  username: string;
  createdAt: string;
}

const usage = `Usage:
  selfdevop registries [list] [--json]
  selfdevop registries add SERVER --username USER [--json]     (the password or token: typed, or piped on stdin)
  selfdevop registries rm ID

The org's credentials for private image registries: a deploy of an image from SERVER
(host[:port]; docker.io for Docker Hub) pulls it with them. The password is sealed and
never shown again; it is read from the terminal without echo, or from stdin when piped,
never from the command line (it would stay in your shell's history).

A deploy pulls an image again when its tag is :latest (or it has none), since that tag
moves; any other tag is pulled only when the node lacks it; a digest never moves.

Example:
  echo "$REGISTRY_TOKEN" | selfdevop registries add registry.example.com --username ci`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    username: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg] = positionals;
  const base = '/api/registries';
  switch (sub) {
    case 'list': {
      const api = await client(ctx.env);
      const items = await api.all<Registry>(base);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'SERVER', 'USERNAME', 'CREATED'],
        items.map((r) => [r.id, r.server, r.username, r.createdAt]),
        'no registry credentials yet: selfdevop registries add SERVER --username USER',
      );
      return 0;
    }
    case 'add': {
      if (!arg) throw new CliError('registries add needs the registry SERVER (host[:port])', 2);
      if (!values.username) throw new CliError('registries add needs --username', 2);
      if (positionals.length > 2)
        throw new CliError(
          'registries add takes no password argument: type it when asked, or pipe it on stdin',
          2,
        );
      const password = await readSecret(ctx, `password for ${values.username}@${arg}: `);
      if (!password) throw new CliError('no password given (typed or on stdin)', 2);
      const api = await client(ctx.env);
      const r = await api.call<Registry>('POST', base, {
        server: arg,
        username: values.username,
        password,
      });
      if (values.json) return (json(ctx.o, r), 0);
      ctx.o.out(`added registry ${r.id}: pulls from ${r.server} go as ${r.username}`);
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`registries ${sub} needs the registry ID`, 2);
      const api = await client(ctx.env);
      await api.call('DELETE', `${base}/${encodeURIComponent(arg)}`);
      ctx.o.out(`removed registry ${arg}`);
      return 0;
    }
    default:
      throw new CliError(`unknown registries command ${sub}: use list, add or rm`, 2);
  }
}

export const registries: Command = {
  name: 'registries',
  summary: "Credentials for the org's private image registries: list, add, rm",
  help: usage,
  run,
};
