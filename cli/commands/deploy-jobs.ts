import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';

interface DeployJob {
  id: string;
  releaseId: string;
  kind: string;
  status: string;
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

const usage = `Usage:
  selfdevop deploy-jobs [list] [--json]
  selfdevop deploy-jobs show ID [--json]

The queue-level view of deploys and rollbacks: one job per piece of work, with its
release, status and attempts. selfdevop deploy and selfdevop rollback create them;
selfdevop releases shows the same work step by step.`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, { json: { type: 'boolean' } });
  const [sub = 'list', id] = positionals;
  const api = await client(ctx.env);
  if (sub === 'show') {
    if (!id) throw new CliError('deploy-jobs show needs an ID', 2);
    const job = await api.call<DeployJob>('GET', `/api/deploy-jobs/${encodeURIComponent(id)}`);
    if (values.json) return (json(ctx.o, job), 0);
    table(
      ctx.o,
      ['ID', 'KIND', 'STATUS', 'ATTEMPTS', 'RELEASE', 'UPDATED'],
      [[job.id, job.kind, job.status, job.attempts, job.releaseId, job.updatedAt]],
      '',
    );
    return 0;
  }
  if (sub !== 'list') throw new CliError(`unknown deploy-jobs command ${sub}: use list or show`, 2);
  const items = await api.all<DeployJob>('/api/deploy-jobs');
  if (values.json) return (json(ctx.o, items), 0);
  table(
    ctx.o,
    ['ID', 'KIND', 'STATUS', 'ATTEMPTS', 'RELEASE', 'CREATED'],
    items.map((j) => [j.id, j.kind, j.status, j.attempts, j.releaseId, j.createdAt]),
    'no deploy jobs yet: selfdevop deploy',
  );
  return 0;
}

export const deployJobs: Command = {
  name: 'deploy-jobs',
  summary: 'Deploy jobs (the queue-level view of releases): list, show',
  help: usage,
  run,
};
