import type { Page } from '../../core/models.ts';
import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';

interface AuditEvent {
  id: string;
  actorType: string;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
}

const usage = `Usage:
  selfdevop audit [--action ACTION] [--target ID] [--limit N] [--cursor C] [--json]

The org's audit trail, oldest first, one page of --limit events (50 by default, at most
200). When there are more, the last line names the --cursor that continues.

Examples:
  selfdevop audit --action release.failed
  selfdevop audit --target whk_4f2a… --json`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    action: { type: 'string' },
    target: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 0 && positionals[0] !== 'list')
    throw new CliError(`unknown audit command ${positionals[0]}: audit only lists`, 2);
  const limit = values.limit ?? '50';
  if (!/^\d+$/.test(limit) || Number(limit) < 1 || Number(limit) > 200)
    throw new CliError(`--limit must be a whole number from 1 to 200, got ${limit}`, 2);
  const q = new URLSearchParams({ limit });
  if (values.action) q.set('action', values.action);
  if (values.target) q.set('targetId', values.target);
  if (values.cursor) q.set('cursor', values.cursor);
  const api = await client(ctx.env);
  const page = await api.call<Page<AuditEvent>>('GET', `/api/audit-events?${q}`);
  if (values.json) return (json(ctx.o, page), 0);
  table(
    ctx.o,
    ['WHEN', 'ACTOR', 'ACTION', 'TARGET', 'DATA'],
    page.items.map((e) => [
      e.createdAt,
      `${e.actorType}:${e.actorId}`,
      e.action,
      e.targetId ? `${e.targetType}:${e.targetId}` : e.targetType,
      Object.keys(e.data).length ? JSON.stringify(e.data).slice(0, 120) : '',
    ]),
    values.action || values.target ? 'no events match' : 'nothing recorded yet',
  );
  if (page.nextCursor) ctx.o.out(`more: selfdevop audit --cursor ${page.nextCursor}`);
  return 0;
}

export const audit: Command = {
  name: 'audit',
  summary: "The org's audit trail, filtered by action or target",
  help: usage,
  run,
};
