import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject, type Project, type Service } from '../resolve.ts';

export const services: Command = {
  name: 'services',
  summary: 'List services and where they are served',
  help: `Usage: selfdevop services [--project NAME|ID] [--json]

Example:
  selfdevop services --project shop`,
  async run(ctx) {
    const { values } = parse(ctx.args, { project: { type: 'string' }, json: { type: 'boolean' } });
    const api = await client(ctx.env);
    let query = '';
    if (values.project) {
      const p = await findProject(api, values.project);
      if (!p) throw new CliError(`project ${values.project} not found`);
      query = `?projectId=${p.id}`;
    }
    const [list, projects] = await Promise.all([
      api.all<Service>(`/api/services${query}`),
      api.all<Project>('/api/projects'),
    ]);
    const items = await Promise.all(
      list.map((s) => api.call<Service>('GET', `/api/services/${s.id}`)),
    );
    if (values.json) return (json(ctx.o, items), 0);
    const projectName = new Map(projects.map((p) => [p.id, p.name]));
    table(
      ctx.o,
      ['PROJECT', 'SERVICE', 'IMAGE', 'PORT', 'HEALTHCHECK', 'HOSTS', 'ID'],
      items.map((s) => [
        projectName.get(s.projectId) ?? s.projectId,
        s.name,
        s.image,
        s.containerPort,
        s.healthcheckPath,
        (s.hosts ?? []).map((h) => `${h.environment}: ${h.host}`).join(', '),
        s.id,
      ]),
      'no services yet: write a selfdevop.yml and run selfdevop deploy',
    );
    return 0;
  },
};
