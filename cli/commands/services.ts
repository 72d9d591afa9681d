import { readFile } from 'node:fs/promises';
import { printMetrics, rangeOf, type MetricsAnswer } from '../metrics.ts';
import { client, parse, readSecret, type Command } from '../command.ts';
import { ApiError } from '../client.ts';
import { CliError } from '../config.ts';
import { appliesLines, json, table } from '../output.ts';
import { findProject, resolveService, type Project, type Service } from '../resolve.ts';

/** `KEY=value` flags as a map. */
function buildArgsOf(values: string[] | undefined): Record<string, string> | undefined {
  if (!values) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0) throw new CliError(`--build-arg ${v}: expected KEY=value`, 2);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

/** `KEY=value` flags as a map; `what` names the flag in the error. */
function pairsOf(values: string[] | undefined, what: string): Record<string, string> | undefined {
  if (!values) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0) throw new CliError(`--${what} ${v}: expected KEY=value`, 2);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

/** A whole number (or a decimal where allowed) from a flag; the API judges the range. */
function numberOf(flag: string, v: string | undefined, decimal = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (!decimal && !Number.isInteger(n)))
    throw new CliError(`--${flag} ${v}: expected a ${decimal ? 'number' : 'whole number'}`, 2);
  return n;
}

const gitOf = (s: Service) =>
  s.git ? `${s.git.url}#${s.git.ref}${s.git.subdir ? `:${s.git.subdir}` : ''}` : null;

/** The service as the API shows one: with its git server's pinned keys and its last poll. */
type GitService = Service & {
  gitHostKeys?: { hosts: string; type: string; fingerprint: string }[];
  gitPoll?: {
    polledAt: string | null;
    sha: string | null;
    error: string | null;
    releaseId: string | null;
  } | null;
};

/** `--known-hosts FILE` (or `-`, stdin) as text; undefined when not given. */
async function knownHostsOf(
  ctx: Parameters<Command['run']>[0],
  file: string | undefined,
): Promise<string | undefined> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text =
      file === '-' ? await readSecret(ctx, 'known_hosts lines: ') : await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`--known-hosts ${file}: ${(e as Error).message}`, 2);
  }
  if (!text.trim()) throw new CliError(`--known-hosts ${file}: no host key lines in it`, 2);
  return text;
}

function hostKeyLines(s: GitService): string[] {
  const keys = s.gitHostKeys ?? [];
  if (keys.length === 0)
    return /^ssh:\/\/|^[^/:]+@[^/:]+:/.test(s.git?.url ?? '')
      ? ['host key: not pinned yet (the next contact pins the key the server presents)']
      : [];
  return keys.map((k) => `host key: ${k.hosts} ${k.type} ${k.fingerprint}`);
}

function pollLine(s: GitService): string {
  const every = s.git?.pollIntervalSeconds;
  const poll = s.gitPoll;
  const last = poll?.polledAt
    ? `; last polled ${poll.polledAt}${poll.sha ? `, head ${poll.sha}` : ''}${poll.releaseId ? `, release ${poll.releaseId}` : ''}${poll.error ? `, failed: ${poll.error}` : ''}`
    : every
      ? '; not polled yet'
      : '';
  return `polling: ${every ? `every ${every} s` : 'off'}${last}`;
}

/** `services git NAME` without changes: the source, its host keys and its last poll. */
function showGit(ctx: Parameters<Command['run']>[0], s: GitService, asJson?: boolean): number {
  if (asJson)
    return (
      json(ctx.o, { git: s.git, gitHostKeys: s.gitHostKeys ?? [], gitPoll: s.gitPoll ?? null }),
      0
    );
  if (!s.git) {
    ctx.o.out(`service ${s.name} has no git source`);
    return 0;
  }
  ctx.o.out(
    `service ${s.name} builds from ${gitOf(s)} (${s.git.dockerfile}); credential: ${s.gitCredentialKind ?? 'none'}`,
  );
  for (const line of hostKeyLines(s)) ctx.o.out(line);
  ctx.o.out(pollLine(s));
  return 0;
}

export const services: Command = {
  name: 'services',
  summary:
    'List services and where they are served; change, redeploy or delete one; set its git source',
  help: `Usage: selfdevop services [--project NAME|ID] [--json]
       selfdevop services update NAME|ID [--project NAME|ID] [--name NEW] [--image IMAGE]
                              [--port N] [--healthcheck PATH] [--migrate CMD | --no-migrate]
                              [--env KEY=value]… [--memory MB] [--cpus N]
                              [--strategy blue_green|replace] [--warm-seconds N]
                              [--drain-seconds N] [--sticky | --no-sticky] [--json]
       selfdevop services redeploy NAME|ID [--environment NAME] [--project NAME|ID]
       selfdevop services delete NAME|ID --confirm NAME [--project NAME|ID]
       selfdevop services health NAME|ID [--environment NAME] [--project NAME|ID] [--json]
       selfdevop services metrics NAME|ID [--range 1h|1d|1w] [--environment NAME] [--json]
       selfdevop services git NAME|ID [--url URL] [--ref REF] [--subdir DIR] [--dockerfile FILE]
                              [--build-arg KEY=value]… [--token-stdin | --no-token]
                              [--known-hosts FILE | --no-known-hosts]
                              [--poll SECONDS | --no-poll] [--json]
       selfdevop services git NAME|ID --remove
       selfdevop services build-secret NAME|ID SECRET_ID [--remove]
       selfdevop services deploy-key NAME|ID
       selfdevop services push-hook NAME|ID [--rotate]

health reads the app's state live from its node (the serving container, its restarts and
its health check) and, apart from it, how the last deploy ended: an app still serving its
previous release after a failed deploy is healthy, and its last deploy failed. It exits 1
when the app is not healthy.

metrics shows request rate, p50/p95 latency, 4xx/5xx rates, open connections, CPU,
memory and restarts (busiest replica, 15 min) over the last hour (day, week) with a
sparkline each; it exits 1 when no metrics backend answers and says what to install.

git sets where the service is built from: the repository (https://…, ssh://… or
user@host:path), the branch or tag deploys follow (default main), the build context's
sub-directory and the Dockerfile in it. --token-stdin reads an HTTPS access token from
stdin (or asks for it, not echoed); it is sealed and never shown again. --no-token drops
the stored credential. --url defaults to the source's current URL. Without any change,
git shows the source: its pinned SSH host keys with their SHA256 fingerprints and the
last poll of its branch.
An ssh repository's host key is pinned on first contact (trust on first use) and every
later fetch requires it: a changed key fails the release naming both fingerprints.
--known-hosts FILE pins the keys in FILE instead (OpenSSH known_hosts lines, as
ssh-keyscan prints them; - reads stdin); --no-known-hosts forgets the pin, so the next
contact pins the key the server presents then (after a real key rotation).
--poll SECONDS polls the followed branch that often (at least 60) and deploys a new head
as a push would, for git hosts that cannot send push webhooks; --no-poll stops it. deploy-key makes an SSH deploy key for an ssh:// repository and
prints its public half: add it to the repository as a read-only deploy key.
build-secret reads a build-time secret's value from stdin (or asks for it, not echoed)
and seals it; the service's builds offer it to RUN --mount=type=secret,id=SECRET_ID (never
as a build arg, never in a layer or the log). --remove drops it.
push-hook prints the service's push-to-deploy webhook URL; the first time (and with
--rotate, which replaces the secret and keeps the URL) it also prints the secret, once:
give both to GitHub, GitLab or Gitea, and a push to the followed branch deploys it.

update changes the settings given, under the rules of creation, and says which apply now
(the name) and which with the next release (everything a container or route is made of);
--env replaces all plain variables. It is refused while a release is in flight.
redeploy deploys the image the environment serves again, with the current settings.
delete removes the service with its releases, secrets, domains and push hook, then its
routes and containers; --confirm repeats its name.

Examples:
  selfdevop services --project shop
  selfdevop services update web --port 3000 --env NODE_ENV=production --sticky
  selfdevop services redeploy web --environment staging
  selfdevop services delete web --confirm web
  selfdevop services health web --environment production
  selfdevop services metrics web --range 1d
  echo "$GITEA_TOKEN" | selfdevop services git web --url https://git.example.com/shop/web.git --token-stdin
  selfdevop services git api --url git@git.example.com:shop/mono.git --subdir api
  ssh-keyscan -t ed25519 git.example.com | selfdevop services git api --known-hosts -
  selfdevop services git web --poll 300
  echo "$NPM_TOKEN" | selfdevop services build-secret web npm_token
  selfdevop services deploy-key api
  selfdevop services push-hook web --rotate`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      project: { type: 'string' },
      environment: { type: 'string' },
      json: { type: 'boolean' },
      range: { type: 'string' },
      url: { type: 'string' },
      ref: { type: 'string' },
      subdir: { type: 'string' },
      dockerfile: { type: 'string' },
      'build-arg': { type: 'string', multiple: true },
      'token-stdin': { type: 'boolean' },
      'no-token': { type: 'boolean' },
      'known-hosts': { type: 'string' },
      'no-known-hosts': { type: 'boolean' },
      poll: { type: 'string' },
      'no-poll': { type: 'boolean' },
      remove: { type: 'boolean' },
      rotate: { type: 'boolean' },
      name: { type: 'string' },
      image: { type: 'string' },
      port: { type: 'string' },
      healthcheck: { type: 'string' },
      migrate: { type: 'string' },
      'no-migrate': { type: 'boolean' },
      env: { type: 'string', multiple: true },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      strategy: { type: 'string' },
      'warm-seconds': { type: 'string' },
      'drain-seconds': { type: 'string' },
      sticky: { type: 'boolean' },
      'no-sticky': { type: 'boolean' },
      confirm: { type: 'string' },
    });
    const [sub = 'list', name, secretId] = positionals;
    if (sub === 'build-secret') {
      if (!name || !secretId)
        throw new CliError('services build-secret needs the service NAME or ID and a SECRET_ID', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      if (!service.git)
        throw new CliError(
          `service ${service.name} has no git source: set one with services git first`,
          2,
        );
      const value = values.remove
        ? null
        : await readSecret(ctx, `value of build secret ${secretId}: `);
      if (value === '') throw new CliError('the value read from stdin is empty', 2);
      const updated = await api.call<Service & { buildSecrets: string[] }>(
        'PATCH',
        `/api/services/${service.id}`,
        { git: { url: service.git.url, buildSecrets: { [secretId]: value } } },
      );
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(
        `service ${updated.name} build secrets: ${updated.buildSecrets.join(', ') || 'none'}`,
      );
      return 0;
    }
    if (sub === 'update') {
      if (!name) throw new CliError('services update needs the service NAME or ID', 2);
      if (values.migrate !== undefined && values['no-migrate'])
        throw new CliError('give --migrate or --no-migrate, not both', 2);
      if (values.sticky && values['no-sticky'])
        throw new CliError('give --sticky or --no-sticky, not both', 2);
      const body: Record<string, unknown> = {
        ...(values.name !== undefined ? { name: values.name } : {}),
        ...(values.image !== undefined ? { image: values.image } : {}),
        ...(values.port !== undefined ? { containerPort: numberOf('port', values.port) } : {}),
        ...(values.healthcheck !== undefined ? { healthcheckPath: values.healthcheck } : {}),
        ...(values.migrate !== undefined ? { migrateCommand: values.migrate } : {}),
        ...(values['no-migrate'] ? { migrateCommand: null } : {}),
        ...(values.env ? { env: pairsOf(values.env, 'env') } : {}),
        ...(values.memory !== undefined ? { memoryMb: numberOf('memory', values.memory) } : {}),
        ...(values.cpus !== undefined ? { cpus: numberOf('cpus', values.cpus, true) } : {}),
        ...(values.strategy !== undefined ? { strategy: values.strategy } : {}),
        ...(values['warm-seconds'] !== undefined
          ? { warmSeconds: numberOf('warm-seconds', values['warm-seconds']) }
          : {}),
        ...(values['drain-seconds'] !== undefined
          ? { drainSeconds: numberOf('drain-seconds', values['drain-seconds']) }
          : {}),
        ...(values.sticky ? { sticky: true } : {}),
        ...(values['no-sticky'] ? { sticky: false } : {}),
      };
      if (Object.keys(body).length === 0)
        throw new CliError('services update needs at least one setting to change', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      const updated = await api.call<Service & { applies: Record<string, string> }>(
        'PATCH',
        `/api/services/${service.id}`,
        body,
      );
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(`updated service ${updated.name} (${updated.id})`);
      for (const line of appliesLines(updated.applies)) ctx.o.out(line);
      return 0;
    }
    if (sub === 'redeploy') {
      if (!name) throw new CliError('services redeploy needs the service NAME or ID', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      const release = await api.call<{ id: string; image: string }>(
        'POST',
        `/api/services/${service.id}/redeploy`,
        values.environment ? { environment: values.environment } : {},
      );
      if (values.json) return (json(ctx.o, release), 0);
      ctx.o.out(
        `redeploying ${service.name} to ${values.environment ?? 'production'}: release ${release.id} (${release.image})`,
      );
      return 0;
    }
    if (sub === 'delete' || sub === 'rm') {
      if (!name) throw new CliError(`services ${sub} needs the service NAME or ID`, 2);
      if (!values.confirm)
        throw new CliError(`services ${sub} needs --confirm with the service's name`, 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      await api.call(
        'DELETE',
        `/api/services/${service.id}?${new URLSearchParams({ confirm: values.confirm })}`,
      );
      ctx.o.out(`deleted service ${service.name}; its routes and containers are being removed`);
      return 0;
    }
    if (sub === 'git') {
      if (!name) throw new CliError('services git needs the service NAME or ID', 2);
      if (values['token-stdin'] && values['no-token'])
        throw new CliError('give --token-stdin or --no-token, not both', 2);
      if (values['known-hosts'] !== undefined && values['no-known-hosts'])
        throw new CliError('give --known-hosts or --no-known-hosts, not both', 2);
      if (values.poll !== undefined && values['no-poll'])
        throw new CliError('give --poll or --no-poll, not both', 2);
      if (values['known-hosts'] === '-' && values['token-stdin'])
        throw new CliError('--known-hosts - and --token-stdin both read stdin: give a file', 2);
      const changes = [
        'url',
        'ref',
        'subdir',
        'dockerfile',
        'build-arg',
        'token-stdin',
        'no-token',
        'known-hosts',
        'no-known-hosts',
        'poll',
        'no-poll',
        'remove',
      ] as const;
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      if (!changes.some((k) => values[k] !== undefined)) return showGit(ctx, service, values.json);
      const url = values.url ?? service.git?.url;
      if (!values.remove && !url)
        throw new CliError(`service ${service.name} has no git source: give --url`, 2);
      let git: Record<string, unknown> | null = null;
      if (!values.remove) {
        const token = values['token-stdin']
          ? await readSecret(ctx, `access token for ${url}: `)
          : undefined;
        if (values['token-stdin'] && !token)
          throw new CliError('the token read from stdin is empty', 2);
        const args = buildArgsOf(values['build-arg']);
        const knownHosts = await knownHostsOf(ctx, values['known-hosts']);
        const poll = numberOf('poll', values.poll);
        git = {
          url,
          ...(values.ref !== undefined ? { ref: values.ref } : {}),
          ...(values.subdir !== undefined ? { subdir: values.subdir } : {}),
          ...(values.dockerfile !== undefined ? { dockerfile: values.dockerfile } : {}),
          ...(args ? { buildArgs: args } : {}),
          ...(token ? { token } : values['no-token'] ? { token: null } : {}),
          ...(knownHosts !== undefined
            ? { knownHosts }
            : values['no-known-hosts']
              ? { knownHosts: null }
              : {}),
          ...(poll !== undefined
            ? { pollIntervalSeconds: poll }
            : values['no-poll']
              ? { pollIntervalSeconds: null }
              : {}),
        };
      }
      const updated = await api.call<Service>('PATCH', `/api/services/${service.id}`, { git });
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(
        updated.git
          ? `service ${updated.name} builds from ${gitOf(updated)} (${updated.git.dockerfile}); credential: ${updated.gitCredentialKind ?? 'none'}`
          : `service ${updated.name} has no git source any more`,
      );
      if (updated.git) {
        for (const line of hostKeyLines(updated)) ctx.o.out(line);
        if (updated.git.pollIntervalSeconds || values['no-poll']) ctx.o.out(pollLine(updated));
      }
      return 0;
    }
    if (sub === 'deploy-key') {
      if (!name) throw new CliError('services deploy-key needs the service NAME or ID', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      const key = await api.call<{ publicKey: string }>(
        'POST',
        `/api/services/${service.id}/deploy-key`,
      );
      if (values.json) return (json(ctx.o, key), 0);
      ctx.o.err(`add this read-only deploy key to ${service.git?.url ?? 'the repository'}:`);
      ctx.o.out(key.publicKey);
      return 0;
    }
    if (sub === 'push-hook') {
      if (!name) throw new CliError('services push-hook needs the service NAME or ID', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, name, values.project);
      type Hook = { path: string; url: string | null; secret?: string };
      let hook: Hook | null = null;
      if (!values.rotate) {
        try {
          hook = await api.call<Hook>('GET', `/api/services/${service.id}/push-hook`);
        } catch (e) {
          // None yet: make it, which shows its secret this once.
          if (!(e instanceof ApiError) || e.status !== 404) throw e;
        }
      }
      hook ??= await api.call<Hook>('POST', `/api/services/${service.id}/push-hook`);
      if (values.json) return (json(ctx.o, hook), 0);
      ctx.o.out(`url     ${hook.url ?? `<PUBLIC_URL>${hook.path}`}`);
      if (hook.secret) {
        ctx.o.out(`secret  ${hook.secret}`);
        ctx.o.err('the secret is shown this once; `--rotate` makes a new one');
      } else ctx.o.err('the secret was shown when the hook was made; `--rotate` makes a new one');
      return 0;
    }
    const api = await client(ctx.env);
    if (sub === 'health') {
      if (!name) throw new CliError('services health needs the service NAME or ID', 2);
      const svc = await resolveService(api, name, values.project);
      const env = values.environment ?? 'production';
      const h = await api.call<{
        app: {
          status: string;
          releaseId: string | null;
          container: { state: string; restarts: number | null; check: string } | null;
          reason: string | null;
        };
        lastDeploy: { releaseId: string; status: string; error: string | null } | null;
        crashLoops?: { replica: string; restartsInWindow: number; threshold: number }[];
      }>('GET', `/api/services/${svc.id}/health?environment=${encodeURIComponent(env)}`);
      const healthy = h.app.status === 'healthy' && !h.crashLoops?.length;
      if (values.json) return (json(ctx.o, h), healthy ? 0 : 1);
      const c = h.app.container;
      ctx.o.out(
        `app: ${h.app.status}${h.app.releaseId ? ` (serving ${h.app.releaseId})` : ''}${c ? `, container ${c.state}, restarts ${c.restarts ?? '?'}, health check ${c.check}` : ''}${h.app.reason ? ` — ${h.app.reason}` : ''}`,
      );
      for (const l of h.crashLoops ?? [])
        ctx.o.out(
          `crash-looping: replica ${l.replica}, ${l.restartsInWindow} restarts in 15 min (threshold ${l.threshold})`,
        );
      ctx.o.out(
        `last deploy: ${h.lastDeploy ? `${h.lastDeploy.status} (${h.lastDeploy.releaseId})${h.lastDeploy.error ? ` — ${h.lastDeploy.error}` : ''}` : 'none yet'}`,
      );
      return healthy ? 0 : 1;
    }
    if (sub === 'metrics') {
      if (!name) throw new CliError('services metrics needs the service NAME or ID', 2);
      const range = rangeOf(values.range);
      const svc = await resolveService(api, name, values.project);
      const env = values.environment ?? 'production';
      const m = await api.call<MetricsAnswer>(
        'GET',
        `/api/services/${svc.id}/metrics?environment=${encodeURIComponent(env)}&range=${range}`,
      );
      if (values.json) return (json(ctx.o, m), m.available ? 0 : 1);
      return printMetrics(ctx.o, m);
    }
    if (sub !== 'list')
      throw new CliError(
        `unknown services command ${sub}: use list, update, redeploy, delete, health, metrics, git, deploy-key or push-hook`,
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
      ['PROJECT', 'SERVICE', 'IMAGE', 'GIT', 'PORT', 'HEALTHCHECK', 'HOSTS', 'ID'],
      items.map((s) => [
        projectName.get(s.projectId) ?? s.projectId,
        s.name,
        s.image,
        gitOf(s),
        s.containerPort ?? 'worker',
        s.containerPort === null ? '-' : s.healthcheckPath,
        (s.hosts ?? []).map((h) => `${h.environment}: ${h.host}`).join(', '),
        s.id,
      ]),
      'no services yet: write a selfdevop.yml and run selfdevop deploy',
    );
    return 0;
  },
};
