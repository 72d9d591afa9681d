import type { ApiClient } from '../client.ts';
import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { defaultManifestFile, readManifest, serviceBody, type Manifest } from '../manifest.ts';
import { duration, type Output } from '../output.ts';
import { findProject, type Project, type Release, type Service } from '../resolve.ts';
import { failure, followRelease } from '../watch.ts';

/** Creates the project, environment and services of the manifest that do not exist yet. */
async function ensureResources(
  api: ApiClient,
  m: Manifest,
  names: string[],
  o: Output,
): Promise<Map<string, Service>> {
  let project: Project | null = await findProject(api, m.project);
  if (!project) {
    project = await api.call<Project>('POST', '/api/projects', { name: m.project });
    o.out(`created project ${m.project}`);
  }
  const full = await api.call<Project>('GET', `/api/projects/${project.id}`);
  if (!full.environments?.some((e) => e.name === m.environment)) {
    await api.call('POST', '/api/environments', { projectId: project.id, name: m.environment });
    o.out(`created environment ${m.environment}`);
  }
  const existing = await api.all<Service>(`/api/services?projectId=${project.id}`);
  const services = new Map<string, Service>();
  for (const name of names) {
    const found = existing.find((s) => s.name === name);
    if (found) {
      services.set(name, await api.call<Service>('GET', `/api/services/${found.id}`));
      continue;
    }
    const created = await api.call<Service>(
      'POST',
      '/api/services',
      serviceBody(project.id, name, m.services[name]!),
    );
    o.out(`created service ${name}`);
    services.set(name, created);
  }
  return services;
}

export const deploy: Command = {
  name: 'deploy',
  summary: 'Deploy the services of selfdevop.yml, streaming steps and log',
  help: `Usage: selfdevop deploy [-f FILE] [--service NAME] [--image IMAGE] [--git-sha SHA] [--quiet]

Reads ${defaultManifestFile}, creates the project, environment and services that do not
exist yet, deploys each service's image and follows the release: every step as it starts
and finishes, and the release log (--quiet hides the log). Exits 0 only when every release
completed; otherwise non-zero, naming the step that failed.

An existing service keeps its stored settings (port, healthcheck, env): the API has no
update endpoint yet, so only the image of selfdevop.yml (or --image) is deployed.

${defaultManifestFile}:
  project: shop
  environment: production        # default
  services:
    web:
      image: registry.example.com/shop/web:1.4.2
      port: 8080
      healthcheck: /health         # default /health
      migrate: bin/migrate         # optional, runs before traffic moves
      strategy: blue_green         # or replace
      env: { LOG_LEVEL: info }     # plain settings; use selfdevop secrets for secrets

Examples:
  selfdevop deploy
  selfdevop deploy --service web --image registry.example.com/shop/web:1.4.3`,
  async run(ctx) {
    const { values } = parse(ctx.args, {
      file: { type: 'string', short: 'f' },
      service: { type: 'string' },
      image: { type: 'string' },
      'git-sha': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    });
    const m = await readManifest(values.file ?? defaultManifestFile);
    const names = values.service ? [values.service] : Object.keys(m.services);
    for (const n of names)
      if (!m.services[n])
        throw new CliError(`service ${n} is not in ${values.file ?? defaultManifestFile}`, 2);
    if (values.image && names.length > 1)
      throw new CliError('--image needs --service: the manifest has several services', 2);
    const api = await client(ctx.env);
    const services = await ensureResources(api, m, names, ctx.o);
    for (const name of names) {
      const service = services.get(name)!;
      const image = values.image ?? m.services[name]!.image;
      const queued = await api.call<Release>('POST', '/api/releases', {
        serviceId: service.id,
        environment: m.environment,
        image,
        ...(values['git-sha'] ? { gitSha: values['git-sha'] } : {}),
      });
      ctx.o.out(`deploying ${image} to ${name} (${m.environment}): release ${queued.id}`);
      const done = await followRelease(api, queued.id, ctx.o, { logs: !values.quiet });
      if (done.status !== 'completed') {
        const f = failure(done);
        ctx.o.err(
          `deploy of ${name} ${done.status === 'rolled_back' ? 'was rolled back' : 'failed'} at step ${f.step}: ${f.error}`,
        );
        return 1;
      }
      const host = service.hosts?.find((h) => h.environment === m.environment)?.host;
      ctx.o.out(
        `release ${done.id} completed in ${duration(done.createdAt, done.finishedAt)}${host ? `: ${name} is served at ${host}` : ''}`,
      );
    }
    return 0;
  },
};
