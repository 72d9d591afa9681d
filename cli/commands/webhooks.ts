import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { webhookEventTypes } from '../../core/webhooks/events.ts';

interface Webhook {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
}

interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  attempt: number;
  delivered: boolean;
  responseStatus: number | null;
  error: string | null;
  createdAt: string;
}

interface TestResult {
  delivered: boolean;
  status: number | null;
  error: string | null;
  eventId: string;
}

const usage = `Usage:
  selfdevop webhooks [list] [--json]
  selfdevop webhooks add URL [--events TYPE,TYPE…] [--json]
  selfdevop webhooks test ID
  selfdevop webhooks deliveries ID [--json]
  selfdevop webhooks rm ID

add subscribes URL to the org's events (all of them without --events) and prints the
signing secret once: keep it to check the X-Selfdevop-Signature header. test sends a
signed webhook.test event now and says what the receiver answered; it exits 1 when the
receiver did not answer 2xx. deliveries lists the recent attempts (the newest 100 are
kept), test events included, with what the receiver answered. Loopback, link-local and the platform's own addresses are
refused (private ranges too, unless the operator set WEBHOOKS_ALLOW_PRIVATE).

Events: ${webhookEventTypes.join(', ')}

Example:
  selfdevop webhooks add https://ci.example.com/hooks/selfdevop --events release.failed,release.completed`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    events: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg] = positionals;
  switch (sub) {
    case 'list': {
      const api = await client(ctx.env);
      const items = await api.all<Webhook>('/api/webhooks');
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'URL', 'EVENTS', 'CREATED'],
        items.map((w) => [w.id, w.url, w.events.join(','), w.createdAt]),
        'no webhooks yet: selfdevop webhooks add URL',
      );
      return 0;
    }
    case 'add': {
      if (!arg) throw new CliError('webhooks add needs a URL', 2);
      const events = values.events
        ?.split(',')
        .map((e) => e.trim())
        .filter(Boolean);
      const api = await client(ctx.env);
      const hook = await api.call<Webhook & { secret: string }>('POST', '/api/webhooks', {
        url: arg,
        ...(events ? { events } : {}),
      });
      if (values.json) return (json(ctx.o, hook), 0);
      ctx.o.out(`added webhook ${hook.id} for ${hook.events.join(', ')}`);
      ctx.o.out(`signing secret (shown once, keep it now): ${hook.secret}`);
      return 0;
    }
    case 'test': {
      if (!arg) throw new CliError('webhooks test needs the webhook ID', 2);
      const api = await client(ctx.env);
      const r = await api.call<TestResult>('POST', `/api/webhooks/${encodeURIComponent(arg)}/test`);
      if (values.json) return (json(ctx.o, r), r.delivered ? 0 : 1);
      if (r.delivered) {
        ctx.o.out(`delivered test event ${r.eventId}: the receiver answered ${r.status}`);
        return 0;
      }
      ctx.o.err(
        `not delivered: ${r.status !== null ? `the receiver answered ${r.status}` : (r.error ?? 'no answer')}`,
      );
      return 1;
    }
    case 'deliveries': {
      if (!arg) throw new CliError('webhooks deliveries needs the webhook ID', 2);
      const api = await client(ctx.env);
      const items = await api.all<Delivery>(`/api/webhooks/${encodeURIComponent(arg)}/deliveries`);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['WHEN', 'EVENT', 'TYPE', 'ATTEMPT', 'RESULT', 'ANSWER'],
        items.map((d) => [
          d.createdAt,
          d.eventId,
          d.eventType,
          d.attempt,
          d.delivered ? 'delivered' : 'failed',
          d.responseStatus ?? d.error,
        ]),
        `no deliveries yet: selfdevop webhooks test ${arg}`,
      );
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`webhooks ${sub} needs the webhook ID`, 2);
      const api = await client(ctx.env);
      await api.call('DELETE', `/api/webhooks/${encodeURIComponent(arg)}`);
      ctx.o.out(`removed webhook ${arg}; deliveries still queued for it are dropped`);
      return 0;
    }
    default:
      throw new CliError(
        `unknown webhooks command ${sub}: use list, add, test, deliveries or rm`,
        2,
      );
  }
}

export const webhooks: Command = {
  name: 'webhooks',
  summary: 'Webhooks of the org: list, add (secret shown once), test, deliveries, rm',
  help: usage,
  run,
};
