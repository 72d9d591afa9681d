import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { resolveService } from '../resolve.ts';

interface AlertRule {
  id: string;
  title: string;
  thresholdMeaning: string;
  defaultThreshold: number;
  min: number;
  max: number;
  perService: boolean;
  severity: string;
  runbook: string;
  override?: number | null;
  threshold?: number;
}

const usage = `Usage:
  selfdevop alerts [rules] [--service NAME|ID] [--project NAME|ID] [--json]
  selfdevop alerts set SERVICE RULE VALUE|default [--project NAME|ID]

The alert rules (5xx spike, p95 latency, crash loop, node unreachable, disk full,
certificate expiring, backup failed) are evaluated by Prometheus self-hosted and by
CloudWatch in the cloud. Firing and resolved alerts reach the notification channels that
subscribe to alert.firing / alert.resolved (selfdevop notification-channels). With
--service, the table shows that service's thresholds in force; set changes one (default
puts the rule's default back). A value out of the rule's range is refused, naming it.

Examples:
  selfdevop alerts --service web
  selfdevop alerts set web latency_p95 0.5
  selfdevop alerts set web http_5xx_spike default`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    service: { type: 'string' },
    project: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'rules', serviceName, rule, value] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'rules':
    case 'list': {
      const svc = values.service ? await resolveService(api, values.service, values.project) : null;
      const r = await api.call<{ items: AlertRule[] }>(
        'GET',
        `/api/alerts/rules${svc ? `?serviceId=${svc.id}` : ''}`,
      );
      if (values.json) return (json(ctx.o, r.items), 0);
      table(
        ctx.o,
        ['RULE', 'SEVERITY', 'THRESHOLD', 'RANGE', 'MEANING', 'RUNBOOK'],
        r.items.map((x) => [
          x.id,
          x.severity,
          svc && x.perService
            ? `${x.threshold}${x.override == null ? ' (default)' : ''}`
            : x.defaultThreshold,
          x.perService ? `${x.min}–${x.max}` : 'per node',
          x.thresholdMeaning,
          x.runbook,
        ]),
        'no rules',
      );
      return 0;
    }
    case 'set': {
      if (!serviceName || !rule || value === undefined)
        throw new CliError('alerts set needs SERVICE, RULE and VALUE (or default)', 2);
      const v = value === 'default' ? null : Number(value);
      if (v !== null && !Number.isFinite(v))
        throw new CliError(`VALUE must be a number or default, got ${value}`, 2);
      const svc = await resolveService(api, serviceName, values.project);
      const r = await api.call<AlertRule>('PUT', '/api/alerts/thresholds', {
        serviceId: svc.id,
        rule,
        value: v,
      });
      if (values.json) return (json(ctx.o, r), 0);
      ctx.o.out(
        `${r.id} of ${svc.name}: ${r.threshold}${r.override == null ? ' (the default)' : ''}`,
      );
      return 0;
    }
    default:
      throw new CliError(`unknown alerts command ${sub}: use rules or set`, 2);
  }
}

export const alerts: Command = {
  name: 'alerts',
  summary: 'Alert rules and a service’s thresholds: rules, set',
  help: usage,
  run,
};
