import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject } from '../resolve.ts';

interface Environment {
  id: string;
  projectId: string;
  name: string;
  createdAt: string;
}

const usage = `Usage:
  selfdevop environments [list] [--project NAME|ID] [--json]
  selfdevop environments create NAME --project NAME|ID [--json]

Every service of a project runs in each of its environments, with its own releases,
secrets, default host and custom domains. Deploy to one with --environment NAME.

Example:
  selfdevop environments create staging --project shop`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    project: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', name] = positionals;
  if (sub !== 'list' && sub !== 'create')
    throw new CliError(`unknown environments command ${sub}: use list or create`, 2);
  if (sub === 'create' && (!name || !values.project))
    throw new CliError('environments create needs NAME and --project', 2);
  const api = await client(ctx.env);
  const project = values.project ? await findProject(api, values.project) : null;
  if (values.project && !project) throw new CliError(`project ${values.project} not found`);
  if (sub === 'create') {
    const e = await api.call<{ id: string }>('POST', '/api/environments', {
      projectId: project!.id,
      name,
    });
    if (values.json) return (json(ctx.o, e), 0);
    ctx.o.out(`created environment ${name} in ${project!.name} (${e.id})`);
    return 0;
  }
  const [items, projects] = await Promise.all([
    api.all<Environment>(`/api/environments${project ? `?projectId=${project.id}` : ''}`),
    api.all<{ id: string; name: string }>('/api/projects'),
  ]);
  if (values.json) return (json(ctx.o, items), 0);
  const projectName = new Map(projects.map((p) => [p.id, p.name]));
  table(
    ctx.o,
    ['PROJECT', 'ENVIRONMENT', 'CREATED', 'ID'],
    items.map((e) => [projectName.get(e.projectId) ?? e.projectId, e.name, e.createdAt, e.id]),
    'no environments yet: selfdevop projects create NAME',
  );
  return 0;
}

export const environments: Command = {
  name: 'environments',
  summary: 'Environments of projects: list, create',
  help: usage,
  run,
};
