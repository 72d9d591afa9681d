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
  selfdevop environments update NAME --project NAME|ID --name NEW [--json]
  selfdevop environments delete NAME --project NAME|ID --confirm NAME
  selfdevop environments promote NAME --project NAME|ID --to NAME [--service NAME]… [--json]

Every service of a project runs in each of its environments, with its own releases,
secrets, default host and custom domains. Deploy to one with --environment NAME.
promote deploys what NAME serves (the exact image: its digest, or the built commit) to the
environment --to names, for each --service given or every service serving in NAME; one
release in flight there refuses it all. delete removes the environment's releases,
secrets and domains, then its routes and containers; --confirm repeats its name.
production keeps its name.

Examples:
  selfdevop environments create staging --project shop
  selfdevop environments promote staging --project shop --to production`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    project: { type: 'string' },
    json: { type: 'boolean' },
    name: { type: 'string' },
    confirm: { type: 'string' },
    to: { type: 'string' },
    service: { type: 'string', multiple: true },
  });
  const [sub = 'list', name] = positionals;
  const verbs = ['list', 'create', 'update', 'delete', 'rm', 'promote'];
  if (!verbs.includes(sub))
    throw new CliError(
      `unknown environments command ${sub}: use list, create, update, delete or promote`,
      2,
    );
  if (sub !== 'list' && (!name || !values.project))
    throw new CliError(`environments ${sub} needs NAME and --project`, 2);
  if (sub === 'update' && !values.name)
    throw new CliError('environments update needs --name NEW', 2);
  if ((sub === 'delete' || sub === 'rm') && !values.confirm)
    throw new CliError(`environments ${sub} needs --confirm with the environment's name`, 2);
  if (sub === 'promote' && !values.to)
    throw new CliError('environments promote needs --to ENVIRONMENT', 2);
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
  if (sub !== 'list') {
    const env = (await api.all<Environment>(`/api/environments?projectId=${project!.id}`)).find(
      (e) => e.name === name || e.id === name,
    );
    if (!env) throw new CliError(`environment ${name} not found in project ${project!.name}`);
    if (sub === 'update') {
      const updated = await api.call<Environment>('PATCH', `/api/environments/${env.id}`, {
        name: values.name,
      });
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(`renamed environment ${env.name} to ${updated.name} in ${project!.name}`);
      return 0;
    }
    if (sub === 'promote') {
      let serviceIds: string[] | undefined;
      if (values.service) {
        const services = await api.all<{ id: string; name: string }>(
          `/api/services?projectId=${project!.id}`,
        );
        serviceIds = values.service.map((s) => {
          const found = services.find((x) => x.name === s || x.id === s);
          if (!found) throw new CliError(`service ${s} not found in project ${project!.name}`);
          return found.id;
        });
      }
      const result = await api.call<{
        releases: { id: string; serviceId: string; image: string }[];
        skipped: { name: string; reason: string }[];
      }>('POST', `/api/environments/${env.id}/promote`, {
        to: values.to,
        ...(serviceIds ? { serviceIds } : {}),
      });
      if (values.json) return (json(ctx.o, result), 0);
      for (const r of result.releases)
        ctx.o.out(`promoting ${r.serviceId} to ${values.to}: release ${r.id} (${r.image})`);
      for (const s of result.skipped) ctx.o.err(`skipped ${s.name}: ${s.reason}`);
      return 0;
    }
    await api.call(
      'DELETE',
      `/api/environments/${env.id}?${new URLSearchParams({ confirm: values.confirm! })}`,
    );
    ctx.o.out(
      `deleted environment ${env.name} of ${project!.name}; its routes and containers are being removed`,
    );
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
  summary: 'Environments of projects: list, create, rename, delete, promote one to another',
  help: usage,
  run,
};
