import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject, resolveService, type Project, type Service } from '../resolve.ts';

export const services: Command = {
  name: 'services',
  summary: 'List services and where they are served',
  help: `Usage:
  selfdevop services [--project NAME|ID] [--json]
  selfdevop services health SERVICE [--environment NAME] [--project NAME|ID] [--json]

health reads the app's state live from its node (the serving container, its restarts and
its health check) and, apart from it, how the last deploy ended: an app still serving its
previous release after a failed deploy is healthy, and its last deploy failed. It exits 1
when the app is not healthy.

Example:
  selfdevop services --project shop
  selfdevop services health web --environment production`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      project: { type: 'string' },
      environment: { type: 'string' },
      json: { type: 'boolean' },
    });
    const api = await client(ctx.env);
    if (positionals[0] === 'health') {
      const svc = await resolveService(api, positionals[1], values.project);
      const env = values.environment ?? 'production';
      const h = await api.call<{
        app: {
          status: string;
          releaseId: string | null;
          container: { state: string; restarts: number | null; check: string } | null;
          reason: string | null;
        };
        lastDeploy: { releaseId: string; status: string; error: string | null } | null;
      }>('GET', `/api/services/${svc.id}/health?environment=${encodeURIComponent(env)}`);
      const healthy = h.app.status === 'healthy';
      if (values.json) return (json(ctx.o, h), healthy ? 0 : 1);
      const c = h.app.container;
      ctx.o.out(
        `app: ${h.app.status}${h.app.releaseId ? ` (serving ${h.app.releaseId})` : ''}${c ? `, container ${c.state}, restarts ${c.restarts ?? '?'}, health check ${c.check}` : ''}${h.app.reason ? ` — ${h.app.reason}` : ''}`,
      );
      ctx.o.out(
        `last deploy: ${h.lastDeploy ? `${h.lastDeploy.status} (${h.lastDeploy.releaseId})${h.lastDeploy.error ? ` — ${h.lastDeploy.error}` : ''}` : 'none yet'}`,
      );
      return healthy ? 0 : 1;
    }
    if (positionals.length > 0)
      throw new CliError(
        `unknown services command ${positionals[0]}: use health, or no command to list`,
        2,
      );
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
