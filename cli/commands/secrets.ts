import { client, parse, readSecret, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { resolveService } from '../resolve.ts';

const usage = `Usage:
  selfdevop secrets list --service NAME|ID [--environment ENV] [--json]
  selfdevop secrets set NAME --service NAME|ID [--environment ENV]   (value on stdin)
  selfdevop secrets rm NAME --service NAME|ID [--environment ENV]

Values are write-only: they are stored encrypted, never shown, and reach the service's
containers as environment variables from its next release on. set reads the value from
stdin (typed without echo at a terminal), so it never lands in shell history or ps.

Example:
  printf %s "$STRIPE_KEY" | selfdevop secrets set STRIPE_KEY --service web`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    service: { type: 'string' },
    project: { type: 'string' },
    environment: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', name] = positionals;
  const api = await client(ctx.env);
  const service = await resolveService(api, values.service, values.project);
  const envQuery = values.environment
    ? `?environment=${encodeURIComponent(values.environment)}`
    : '';
  switch (sub) {
    case 'list': {
      const res = await api.call<{
        items: { name: string; environment: string; updatedAt: string }[];
      }>('GET', `/api/services/${service.id}/secrets${envQuery}`);
      if (values.json) return (json(ctx.o, res.items), 0);
      table(
        ctx.o,
        ['NAME', 'ENVIRONMENT', 'UPDATED'],
        res.items.map((s) => [s.name, s.environment, s.updatedAt]),
        `no secrets for ${service.name} yet: printf %s VALUE | selfdevop secrets set NAME --service ${service.name}`,
      );
      return 0;
    }
    case 'set': {
      if (!name) throw new CliError('secrets set needs a NAME', 2);
      const value = await readSecret(ctx, `value of ${name}: `);
      await api.call('POST', `/api/services/${service.id}/secrets`, {
        name,
        value,
        ...(values.environment ? { environment: values.environment } : {}),
      });
      ctx.o.out(`set ${name} on ${service.name}; it applies from the next deploy`);
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!name) throw new CliError('secrets rm needs a NAME', 2);
      await api.call(
        'DELETE',
        `/api/services/${service.id}/secrets/${encodeURIComponent(name)}${envQuery}`,
      );
      ctx.o.out(`removed ${name} from ${service.name}; the next release runs without it`);
      return 0;
    }
    default:
      throw new CliError(`unknown secrets command ${sub}: use list, set or rm`, 2);
  }
}

export const secrets: Command = {
  name: 'secrets',
  summary: 'Secrets of a service: list, set (stdin), rm',
  help: usage,
  run,
};
