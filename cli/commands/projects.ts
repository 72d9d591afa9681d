import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { printMetrics, rangeOf, type MetricsAnswer } from '../metrics.ts';
import { json, table } from '../output.ts';
import { findProject, type Project } from '../resolve.ts';

const usage = `Usage:
  selfdevop projects [list] [--json]
  selfdevop projects create NAME [--json]
  selfdevop projects show NAME|ID [--json]
  selfdevop projects update NAME|ID --name NEW [--json]
  selfdevop projects delete NAME|ID --confirm NAME
  selfdevop projects metrics NAME|ID [--range 1h|1d|1w] [--json]

A project groups services and their environments; create starts it with production.
Names are DNS labels (lowercase letters, digits, hyphens). delete removes every environment
and service of the project (its data services must be deleted first); --confirm repeats
its name. metrics shows the request and 5xx rates, p95 latency, open connections, CPU and
memory of all the project's services and environments together over the last hour (day,
week) with a sparkline each; it exits 1 when no metrics backend answers and says what to
install.

Examples:
  selfdevop projects create shop
  selfdevop projects metrics shop --range 1d`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    json: { type: 'boolean' },
    name: { type: 'string' },
    confirm: { type: 'string' },
    range: { type: 'string' },
  });
  const [sub = 'list', name] = positionals;
  switch (sub) {
    case 'list': {
      const api = await client(ctx.env);
      const items = await api.all<Project>('/api/projects');
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['NAME', 'CREATED', 'ID'],
        items.map((p) => [p.name, p.createdAt, p.id]),
        'no projects yet: selfdevop projects create NAME (or selfdevop deploy with a selfdevop.yml)',
      );
      return 0;
    }
    case 'create': {
      if (!name) throw new CliError('projects create needs a NAME', 2);
      const api = await client(ctx.env);
      const p = await api.call<Project>('POST', '/api/projects', { name });
      if (values.json) return (json(ctx.o, p), 0);
      ctx.o.out(
        `created project ${p.name} (${p.id}) with ${(p.environments ?? []).map((e) => e.name).join(', ')}`,
      );
      return 0;
    }
    case 'show': {
      if (!name) throw new CliError('projects show needs NAME or ID', 2);
      const api = await client(ctx.env);
      const p = await findProject(api, name);
      if (!p) throw new CliError(`project ${name} not found`);
      const full = await api.call<Project>('GET', `/api/projects/${p.id}`);
      if (values.json) return (json(ctx.o, full), 0);
      ctx.o.out(`project ${full.name} (${full.id}), created ${full.createdAt}`);
      table(
        ctx.o,
        ['ENVIRONMENT', 'ID'],
        (full.environments ?? []).map((e) => [e.name, e.id]),
        'no environments',
      );
      return 0;
    }
    case 'update': {
      if (!name || !values.name) throw new CliError('projects update needs NAME and --name', 2);
      const api = await client(ctx.env);
      const p = await findProject(api, name);
      if (!p) throw new CliError(`project ${name} not found`);
      const updated = await api.call<Project>('PATCH', `/api/projects/${p.id}`, {
        name: values.name,
      });
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(`renamed project ${p.name} to ${updated.name}`);
      return 0;
    }
    case 'delete':
    case 'rm': {
      if (!name) throw new CliError(`projects ${sub} needs NAME or ID`, 2);
      if (!values.confirm)
        throw new CliError(`projects ${sub} needs --confirm with the project's name`, 2);
      const api = await client(ctx.env);
      const p = await findProject(api, name);
      if (!p) throw new CliError(`project ${name} not found`);
      await api.call(
        'DELETE',
        `/api/projects/${p.id}?${new URLSearchParams({ confirm: values.confirm })}`,
      );
      ctx.o.out(`deleted project ${p.name}; its routes and containers are being removed`);
      return 0;
    }
    case 'metrics': {
      if (!name) throw new CliError('projects metrics needs NAME or ID', 2);
      const range = rangeOf(values.range);
      const api = await client(ctx.env);
      const p = await findProject(api, name);
      if (!p) throw new CliError(`project ${name} not found`);
      const m = await api.call<MetricsAnswer>(
        'GET',
        `/api/projects/${p.id}/metrics?range=${range}`,
      );
      if (values.json) return (json(ctx.o, m), m.available ? 0 : 1);
      return printMetrics(ctx.o, m);
    }
    default:
      throw new CliError(
        `unknown projects command ${sub}: use list, create, show, update, delete or metrics`,
        2,
      );
  }
}

export const projects: Command = {
  name: 'projects',
  summary: 'Projects: list, create, show (with their environments), rename, delete, metrics',
  help: usage,
  run,
};
