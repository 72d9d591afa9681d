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

interface NodeRecord {
  id: string;
  name: string;
  dockerHost: string;
  address: string;
  drainMode: boolean;
  labels: Record<string, string>;
}

export const nodes: Command = {
  name: 'nodes',
  summary: 'List or add the Docker hosts releases run on',
  help: `Usage:
  selfdevop nodes [--json]
  selfdevop nodes add NAME --docker-host URL --address ADDRESS

--docker-host is unix:///var/run/docker.sock, tcp://host:2376 (TLS) or ssh://user@host;
--address is where the edge reaches the containers published on that node.

Example:
  selfdevop nodes add local --docker-host unix:///var/run/docker.sock --address 127.0.0.1`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      json: { type: 'boolean' },
      'docker-host': { type: 'string' },
      address: { type: 'string' },
    });
    const api = await client(ctx.env);
    const [sub = 'list', name] = positionals;
    if (sub === 'add') {
      if (!name || !values['docker-host'] || !values.address) {
        throw new CliError('nodes add needs NAME, --docker-host and --address', 2);
      }
      const node = await api.call<{ id: string }>('POST', '/api/nodes', {
        name,
        dockerHost: values['docker-host'],
        address: values.address,
      });
      ctx.o.out(`added node ${name} (${node.id})`);
      return 0;
    }
    if (sub !== 'list') throw new CliError(`unknown nodes command ${sub}: use list or add`, 2);
    const items = await api.all<NodeRecord>('/api/nodes');
    if (values.json) return (json(ctx.o, items), 0);
    table(
      ctx.o,
      ['NAME', 'STATE', 'DOCKER HOST', 'ADDRESS', 'ID'],
      items.map((n) => [
        n.name,
        n.drainMode ? 'draining' : 'active',
        n.dockerHost,
        n.address,
        n.id,
      ]),
      'no nodes yet: selfdevop nodes add NAME --docker-host unix:///var/run/docker.sock --address 127.0.0.1',
    );
    return 0;
  },
};
