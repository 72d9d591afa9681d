import type { ApiClient } from '../client.ts';
import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { defaultManifestFile, readManifest, serviceBody, type Manifest } from '../manifest.ts';
import { duration, type Output } from '../output.ts';
import { findProject, type Project, type Release, type Service } from '../resolve.ts';
import { failure, followRelease } from '../watch.ts';

/** Whether the stored git source already is the manifest's (fields it leaves out keep theirs). */
function sameGit(stored: Service['git'], wanted: NonNullable<Manifest['services'][string]['git']>) {
  if (!stored) return false;
  return (
    stored.url === wanted.url &&
    (wanted.ref === undefined || stored.ref === wanted.ref) &&
    (wanted.subdir === undefined || stored.subdir === wanted.subdir.replace(/^\.?\/+|\/+$/g, '')) &&
    (wanted.dockerfile === undefined || stored.dockerfile === wanted.dockerfile) &&
    (wanted.buildArgs === undefined ||
      JSON.stringify(stored.buildArgs) === JSON.stringify(wanted.buildArgs))
  );
}

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
      let service = await api.call<Service>('GET', `/api/services/${found.id}`);
      const git = m.services[name]!.git;
      if (git && !sameGit(service.git, git)) {
        service = await api.call<Service>('PATCH', `/api/services/${found.id}`, { git });
        o.out(`updated the git source of service ${name}`);
      }
      services.set(name, service);
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
  help: `Usage: selfdevop deploy [-f FILE] [--service NAME] [--image IMAGE | --git-ref REF] [--git-sha SHA] [--quiet]

Reads ${defaultManifestFile}, creates the project, environment and services that do not
exist yet, deploys each service's image and follows the release: every step as it starts
and finishes, and the release log (--quiet hides the log). Exits 0 only when every release
completed; otherwise non-zero, naming the step that failed.

A service with \`git:\` and no image is built from its repository on the node: the branch
it follows, or --git-ref (a branch, tag or full commit sha); the build's output is part
of the log. An existing service keeps its stored settings (port, healthcheck, env), but
takes the git source of ${defaultManifestFile} when it changed. A private repository's token
or deploy key is set with selfdevop services git, never in ${defaultManifestFile}.

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
    api:
      git:                         # built from git instead of an image
        url: https://git.example.com/shop/api.git
        ref: main                  # the branch or tag deploys follow (default main)
        subdir: api                # the build context (default the repository root)
        dockerfile: Dockerfile     # relative to subdir (default Dockerfile)
        buildArgs: { NODE_ENV: production }
      port: 3000

Examples:
  selfdevop deploy
  selfdevop deploy --service web --image registry.example.com/shop/web:1.4.3
  selfdevop deploy --service api --git-ref v1.4.3`,
  async run(ctx) {
    const { values } = parse(ctx.args, {
      file: { type: 'string', short: 'f' },
      service: { type: 'string' },
      image: { type: 'string' },
      'git-sha': { type: 'string' },
      'git-ref': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    });
    const m = await readManifest(values.file ?? defaultManifestFile);
    const names = values.service ? [values.service] : Object.keys(m.services);
    for (const n of names)
      if (!m.services[n])
        throw new CliError(`service ${n} is not in ${values.file ?? defaultManifestFile}`, 2);
    if (values.image && names.length > 1)
      throw new CliError('--image needs --service: the manifest has several services', 2);
    if (values['git-ref'] && names.length > 1)
      throw new CliError('--git-ref needs --service: the manifest has several services', 2);
    if (values.image && values['git-ref'])
      throw new CliError('give --image or --git-ref, not both', 2);
    const api = await client(ctx.env);
    const services = await ensureResources(api, m, names, ctx.o);
    for (const name of names) {
      const service = services.get(name)!;
      const entry = m.services[name]!;
      const image = values['git-ref'] ? undefined : (values.image ?? entry.image);
      if (image === undefined && !entry.git && !service.git)
        throw new CliError(`service ${name} has no image and no git source to build`, 2);
      const queued = await api.call<Release>('POST', '/api/releases', {
        serviceId: service.id,
        environment: m.environment,
        ...(image !== undefined ? { image } : {}),
        ...(image === undefined && values['git-ref'] ? { gitRef: values['git-ref'] } : {}),
        ...(values['git-sha'] ? { gitSha: values['git-sha'] } : {}),
      });
      const what =
        image ??
        `${queued.gitRef ?? 'its branch'}${queued.gitSha ? ` (${queued.gitSha.slice(0, 12)})` : ''}`;
      ctx.o.out(`deploying ${what} to ${name} (${m.environment}): release ${queued.id}`);
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
