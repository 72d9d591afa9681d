import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { duration, json, table } from '../output.ts';
import { isId, releasesOf, resolveService, type Release } from '../resolve.ts';
import { failure, followRelease } from '../watch.ts';

const serviceOptions = { service: { type: 'string' }, project: { type: 'string' } } as const;

export const releases: Command = {
  name: 'releases',
  summary: 'List the releases of a service',
  help: `Usage: selfdevop releases [--service NAME|ID] [--project NAME] [--limit N] [--json]

Lists releases oldest first (the last line is the newest). The service defaults to the
only service of ./selfdevop.yml.

Example:
  selfdevop releases --service web --limit 5`,
  async run(ctx) {
    const { values } = parse(ctx.args, {
      ...serviceOptions,
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    const api = await client(ctx.env);
    const service = await resolveService(api, values.service, values.project);
    const limit = Number(values.limit ?? 20);
    if (!Number.isInteger(limit) || limit < 1)
      throw new CliError('--limit must be a positive whole number', 2);
    const items = (await releasesOf(api, service.id)).slice(-limit);
    if (values.json) return (json(ctx.o, items), 0);
    table(
      ctx.o,
      ['ID', 'STATUS', 'IMAGE', 'GIT', 'CREATED', 'TOOK', 'ERROR'],
      items.map((r) => [
        r.id,
        r.status,
        r.image,
        // The ref asked for and the commit built: `main@1a2b3c4d5e6f`.
        r.gitSha
          ? `${r.gitRef && r.gitRef !== r.gitSha ? `${r.gitRef}@` : ''}${r.gitSha.slice(0, 12)}`
          : null,
        r.createdAt,
        duration(r.createdAt, r.finishedAt),
        r.error,
      ]),
      `no releases of ${service.name} yet: run selfdevop deploy`,
    );
    return 0;
  },
};

export const rollback: Command = {
  name: 'rollback',
  summary: 'Return traffic to the release before the serving one',
  help: `Usage: selfdevop rollback [RELEASE_ID] [--service NAME|ID] [--project NAME]

Rolls back RELEASE_ID, or the service's serving release when no id is given: traffic
returns at once to the previous release while it is still warm, else that release's
image is deployed again (followed until it completes).

Example:
  selfdevop rollback --service web`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, serviceOptions);
    const api = await client(ctx.env);
    let id = positionals[0];
    if (id && !isId(id, 'rel')) throw new CliError(`${id} is not a release id (rel_…)`, 2);
    if (!id) {
      const service = await resolveService(api, values.service, values.project);
      const serving = (await releasesOf(api, service.id))
        .filter((r) => r.status === 'completed')
        .at(-1);
      if (!serving) throw new CliError(`${service.name} has no completed release to roll back`);
      id = serving.id;
    }
    const result = await api.call<{
      path: string;
      release: Release;
      to: Release;
      redeploy: Release | null;
    }>('POST', `/api/releases/${id}/rollback`);
    if (result.path === 'warm') {
      ctx.o.out(`rolled back ${id}: traffic is back on ${result.to.id} (${result.to.image})`);
      return 0;
    }
    ctx.o.out(
      `rolling back ${id}: redeploying ${result.to.image} as release ${result.redeploy?.id}`,
    );
    const done = await followRelease(api, result.redeploy!.id, ctx.o, { logs: false });
    if (done.status === 'completed') {
      ctx.o.out(`rolled back: ${done.id} serves ${done.image}`);
      return 0;
    }
    const f = failure(done);
    ctx.o.err(`rollback failed at step ${f.step}: ${f.error}`);
    return 1;
  },
};

export const cancel: Command = {
  name: 'cancel',
  summary: 'Cancel a release that is not yet switching traffic',
  help: `Usage: selfdevop cancel [RELEASE_ID] [--service NAME|ID] [--project NAME]

Cancels RELEASE_ID, or the service's release in flight when no id is given: it fails as
"cancelled by" you, its candidate container is removed, and the service can be deployed
again at once. A release already switching traffic or finished cannot be cancelled.

Example:
  selfdevop cancel --service web`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, serviceOptions);
    const api = await client(ctx.env);
    let id = positionals[0];
    if (id && !isId(id, 'rel')) throw new CliError(`${id} is not a release id (rel_…)`, 2);
    if (!id) {
      const service = await resolveService(api, values.service, values.project);
      const finished = ['completed', 'failed', 'rolled_back'];
      const inFlight = (await releasesOf(api, service.id))
        .filter((r) => !finished.includes(r.status))
        .at(-1);
      if (!inFlight) throw new CliError(`${service.name} has no release in flight to cancel`);
      id = inFlight.id;
    }
    const done = await api.call<Release>('POST', `/api/releases/${id}/cancel`);
    ctx.o.out(`cancelled ${done.id} (${done.image}): ${done.error}`);
    return 0;
  },
};

export const logs: Command = {
  name: 'logs',
  summary: "Show (or follow) a service's app logs, or a release log",
  help: `Usage: selfdevop logs SERVICE [--environment NAME] [--since 1h] [--until TIME]
                      [--grep TEXT [--regex] [--ignore-case]] [--tail N] [--follow] [--json]
       selfdevop logs [RELEASE_ID] [--service NAME|ID] [--follow] [--json]

With a SERVICE (name or svc_ id): the app's own output, every replica's stdout and stderr
as its node's Docker engine keeps it (rotated: 3 files of 10 MB per container), merged in
time order, each line with its replica and node. --since and --until take an ISO time or
a duration back from now (90s, 15m, 1h, 7d; a range is at most 31 days); --grep is a plain
substring, or with --regex a regular expression (no backreferences or lookaround);
--tail N keeps the newest N lines (200 when no --since is given); --follow keeps printing
new lines, of new releases' containers too, until interrupted.

With a RELEASE_ID, or with --service alone: the release's deploy log (its steps, build and
migration output). --follow streams it until the release finishes.

Examples:
  selfdevop logs web --since 1h --grep "status=500"
  selfdevop logs web --follow
  selfdevop logs --service web --follow      # the newest release's deploy log`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      ...serviceOptions,
      follow: { type: 'boolean', short: 'f' },
      json: { type: 'boolean' },
      environment: { type: 'string', short: 'e' },
      since: { type: 'string' },
      until: { type: 'string' },
      grep: { type: 'string' },
      regex: { type: 'boolean' },
      'ignore-case': { type: 'boolean', short: 'i' },
      tail: { type: 'string' },
    });
    const api = await client(ctx.env);
    let id = positionals[0];
    const appOnly = ['environment', 'since', 'until', 'grep', 'regex', 'ignore-case', 'tail'];
    if ((id && !isId(id, 'rel')) || (!id && appOnly.some((k) => k in values)))
      return appLogs(ctx, api, id ?? values.service, values);
    if (!id) {
      const service = await resolveService(api, values.service, values.project);
      const newest = (await releasesOf(api, service.id)).at(-1);
      if (!newest) throw new CliError(`no releases of ${service.name} yet: run selfdevop deploy`);
      id = newest.id;
    }
    type Line = { seq: number; at: string; stream: string; line: string };
    const lines: Line[] = [];
    let after = 0;
    for (let i = 0; i < 1000; i++) {
      const page = await api.call<{ items: Line[]; nextAfter: number }>(
        'GET',
        `/api/releases/${id}/logs?after=${after}&limit=5000`,
      );
      lines.push(...page.items);
      if (page.items.length < 5000) break;
      after = page.nextAfter;
    }
    if (values.json) return (json(ctx.o, lines), 0);
    for (const l of lines)
      ctx.o.out(`${l.at}  ${l.stream === 'system' ? '' : `[${l.stream}] `}${l.line}`);
    if (values.follow) {
      const done = await followRelease(api, id, ctx.o, {
        logs: true,
        afterSeq: lines.at(-1)?.seq ?? 0,
      });
      ctx.o.out(`release ${id} ${done.status}`);
    }
    return 0;
  },
};

type AppLogLine = { time: string; replica: string; node: string; stream: string; text: string };
type AppLogRecord =
  | AppLogLine
  | { type: 'notice'; message: string }
  | { type: 'more'; since: string }
  | { type: 'end' };

/** The app's lines as they stream in: text for people, one JSON object a line with --json. */
async function appLogs(
  ctx: Parameters<Command['run']>[0],
  api: Awaited<ReturnType<typeof client>>,
  serviceName: string | undefined,
  values: Record<string, string | boolean | undefined>,
): Promise<number> {
  const service = await resolveService(api, serviceName, values.project as string | undefined);
  const query = new URLSearchParams();
  if (values.environment) query.set('environment', String(values.environment));
  for (const k of ['since', 'until', 'grep', 'tail'] as const)
    if (values[k] !== undefined) query.set(k, String(values[k]));
  if (values.regex) query.set('regex', 'true');
  if (values['ignore-case']) query.set('ignoreCase', 'true');
  if (values.follow) query.set('follow', 'true');
  for await (const r of api.lines<AppLogRecord>(`/api/services/${service.id}/logs?${query}`)) {
    if ('type' in r) {
      if (r.type === 'notice') ctx.o.err(`selfdevop: ${r.message}`);
      // A range read answers a page; the next one starts where this one stopped.
      if (r.type === 'more') ctx.o.err(`selfdevop: more lines; read on with --since ${r.since}`);
      continue;
    }
    if (values.json) ctx.o.out(JSON.stringify(r));
    else
      ctx.o.out(
        `${r.time.slice(0, 23)}Z  ${r.replica}@${r.node}  ${r.stream === 'stderr' ? '[stderr] ' : ''}${r.text}`,
      );
  }
  return 0;
}
