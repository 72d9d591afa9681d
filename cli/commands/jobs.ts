import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { resolveService } from '../resolve.ts';

interface Job {
  id: string;
  name: string;
  serviceId: string;
  environment: string;
  schedule: string;
  timeZone: string;
  command: string;
  overlap: 'skip' | 'allow';
  timeoutSeconds: number;
  retries: number;
  nextRuns: string[];
}

interface JobRun {
  id: string;
  trigger: string;
  attempt: number;
  status: string;
  exitCode: number | null;
  startedAt: string;
  durationMs: number | null;
  logTail: string;
  error: string | null;
}

const usage = `Usage:
  selfdevop jobs [list] [--service NAME|ID] [--json]
  selfdevop jobs add NAME --service NAME|ID --schedule CRON --command CMD
        [--environment ENV] [--time-zone ZONE] [--overlap skip|allow]
        [--timeout SECONDS] [--retries N] [--json]
  selfdevop jobs update ID [--schedule CRON] [--time-zone ZONE] [--command CMD]
        [--overlap skip|allow] [--timeout SECONDS] [--retries N]
  selfdevop jobs run ID
  selfdevop jobs runs ID [--json]
  selfdevop jobs rm ID

A job runs CMD (with sh -c) in a one-off container of the service environment's serving
release: its image, environment and secrets. CRON has five fields (minute hour
day-of-month month day-of-week) or is a macro such as @daily; it is read in --time-zone
(an IANA name, UTC unless given). Jobs fire at most once a minute. --overlap skip (the
default) records a firing as skipped while the previous run still runs. A failed or
timed-out run is tried again --retries times, waiting longer each time.

Example:
  selfdevop jobs add nightly-report --service web --schedule "30 2 * * *" \\
    --time-zone Europe/Berlin --command "node scripts/report.js" --timeout 600 --retries 2`;

function intOption(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new CliError(`--${name} must be a whole number, got ${v}`, 2);
  return n;
}

function fieldsOf(values: Record<string, unknown>): Record<string, unknown> {
  const timeout = intOption(values.timeout as string | undefined, 'timeout');
  const retries = intOption(values.retries as string | undefined, 'retries');
  return {
    ...(values.schedule !== undefined ? { schedule: values.schedule } : {}),
    ...(values['time-zone'] !== undefined ? { timeZone: values['time-zone'] } : {}),
    ...(values.command !== undefined ? { command: values.command } : {}),
    ...(values.overlap !== undefined ? { overlap: values.overlap } : {}),
    ...(timeout !== undefined ? { timeoutSeconds: timeout } : {}),
    ...(retries !== undefined ? { retries } : {}),
  };
}

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    service: { type: 'string' },
    project: { type: 'string' },
    environment: { type: 'string' },
    schedule: { type: 'string' },
    'time-zone': { type: 'string' },
    command: { type: 'string' },
    overlap: { type: 'string' },
    timeout: { type: 'string' },
    retries: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg] = positionals;
  switch (sub) {
    case 'list': {
      const api = await client(ctx.env);
      const service = values.service
        ? await resolveService(api, values.service, values.project)
        : null;
      const items = await api.all<Job>(
        `/api/jobs${service ? `?serviceId=${encodeURIComponent(service.id)}` : ''}`,
      );
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'NAME', 'ENVIRONMENT', 'SCHEDULE', 'TIME ZONE', 'NEXT RUN', 'COMMAND'],
        items.map((j) => [
          j.id,
          j.name,
          j.environment,
          j.schedule,
          j.timeZone,
          j.nextRuns[0] ?? '-',
          j.command,
        ]),
        'no jobs yet: selfdevop jobs add NAME --service SERVICE --schedule CRON --command CMD',
      );
      return 0;
    }
    case 'add': {
      if (!arg) throw new CliError('jobs add needs the job NAME', 2);
      if (!values.schedule || !values.command)
        throw new CliError('jobs add needs --schedule CRON and --command CMD', 2);
      const api = await client(ctx.env);
      const service = await resolveService(api, values.service, values.project);
      const job = await api.call<Job>('POST', '/api/jobs', {
        serviceId: service.id,
        name: arg,
        ...(values.environment ? { environment: values.environment } : {}),
        ...fieldsOf(values),
      });
      if (values.json) return (json(ctx.o, job), 0);
      ctx.o.out(
        `added job ${job.id} (${job.name}): ${job.schedule} ${job.timeZone}; next run ${job.nextRuns[0] ?? 'not within 40 days'}`,
      );
      return 0;
    }
    case 'update': {
      if (!arg) throw new CliError('jobs update needs the job ID', 2);
      const body = fieldsOf(values);
      if (Object.keys(body).length === 0)
        throw new CliError('jobs update needs at least one option to change', 2);
      const api = await client(ctx.env);
      const job = await api.call<Job>('PATCH', `/api/jobs/${encodeURIComponent(arg)}`, body);
      if (values.json) return (json(ctx.o, job), 0);
      ctx.o.out(`updated job ${job.id}: ${job.schedule} ${job.timeZone}`);
      return 0;
    }
    case 'run': {
      if (!arg) throw new CliError('jobs run needs the job ID', 2);
      const api = await client(ctx.env);
      await api.call('POST', `/api/jobs/${encodeURIComponent(arg)}/run`);
      ctx.o.out(`queued a run of ${arg}: selfdevop jobs runs ${arg}`);
      return 0;
    }
    case 'runs': {
      if (!arg) throw new CliError('jobs runs needs the job ID', 2);
      const api = await client(ctx.env);
      const items = await api.all<JobRun>(`/api/jobs/${encodeURIComponent(arg)}/runs`);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['STARTED', 'TRIGGER', 'ATTEMPT', 'STATUS', 'EXIT', 'DURATION', 'LAST LINE'],
        items.map((r) => [
          r.startedAt,
          r.trigger,
          r.attempt,
          r.status,
          r.exitCode ?? '-',
          r.durationMs === null ? '-' : `${(r.durationMs / 1000).toFixed(1)}s`,
          r.error ?? r.logTail.trim().split('\n').pop() ?? '',
        ]),
        `no runs yet: selfdevop jobs run ${arg}`,
      );
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`jobs ${sub} needs the job ID`, 2);
      const api = await client(ctx.env);
      await api.call('DELETE', `/api/jobs/${encodeURIComponent(arg)}`);
      ctx.o.out(`removed job ${arg} and its schedule`);
      return 0;
    }
    default:
      throw new CliError(`unknown jobs command ${sub}: use list, add, update, run, runs or rm`, 2);
  }
}

export const jobs: Command = {
  name: 'jobs',
  summary: 'Cron jobs of services: list, add, update, run now, runs (history), rm',
  help: usage,
  run,
};
