import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject, type Project } from '../resolve.ts';

const usage = `Usage:
  selfdevop projects [list] [--json]
  selfdevop projects create NAME [--json]
  selfdevop projects show NAME|ID [--json]

A project groups services and their environments; create starts it with production.
Names are DNS labels (lowercase letters, digits, hyphens).

Example:
  selfdevop projects create shop`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, { json: { type: 'boolean' } });
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
    default:
      throw new CliError(`unknown projects command ${sub}: use list, create or show`, 2);
  }
}

export const projects: Command = {
  name: 'projects',
  summary: 'Projects: list, create, show (with their environments)',
  help: usage,
  run,
};
