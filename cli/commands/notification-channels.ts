import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { webhookEventTypes } from '../../core/webhooks/events.ts';

interface Channel {
  id: string;
  kind: 'slack' | 'email';
  name: string;
  target: string;
  events: string[];
  groupWindowSeconds: number;
  createdAt: string;
}

interface Delivery {
  id: string;
  eventType: string;
  events: number;
  attempt: number;
  delivered: boolean;
  error: string | null;
  createdAt: string;
}

const usage = `Usage:
  selfdevop notification-channels [list] [--json]
  selfdevop notification-channels add slack NAME URL [--events TYPE,…] [--window SECONDS] [--json]
  selfdevop notification-channels add email NAME ADDRESS [--events TYPE,…] [--window SECONDS] [--json]
  selfdevop notification-channels test ID
  selfdevop notification-channels deliveries ID [--json]
  selfdevop notification-channels rm ID

Channels tell people about the org's releases and domains in Slack (an incoming-webhook
URL from Slack, https://hooks.slack.com/services/…, stored sealed and shown masked) or by
e-mail (the operator's mail server). Events arriving within --window seconds (60 unless
set, 0 sends each alone, at most 3600) go out as one message, so a storm of failures is
one message per channel. Each message links to the dashboard page of the event and to its
runbook. test sends a test message now and exits 1 when it was not delivered. For a
signed JSON POST to your own receiver, use \`selfdevop webhooks\`.

Events: ${webhookEventTypes.join(', ')}

Example:
  selfdevop notification-channels add email on-call ops@example.com --events release.failed,release.rolled_back`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    events: { type: 'string' },
    window: { type: 'string' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg, name, target] = positionals;
  const base = '/api/notification-channels';
  switch (sub) {
    case 'list': {
      const api = await client(ctx.env);
      const items = await api.all<Channel>(base);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'KIND', 'NAME', 'TARGET', 'EVENTS', 'WINDOW'],
        items.map((c) => [
          c.id,
          c.kind,
          c.name,
          c.target,
          c.events.join(','),
          `${c.groupWindowSeconds}s`,
        ]),
        'no notification channels yet: selfdevop notification-channels add email NAME ADDRESS',
      );
      return 0;
    }
    case 'add': {
      if (arg !== 'slack' && arg !== 'email')
        throw new CliError('notification-channels add needs a kind: slack or email', 2);
      if (!name || !target)
        throw new CliError(
          `notification-channels add ${arg} needs a NAME and ${arg === 'slack' ? 'a URL' : 'an ADDRESS'}`,
          2,
        );
      const events = values.events
        ?.split(',')
        .map((e) => e.trim())
        .filter(Boolean);
      const window = values.window === undefined ? undefined : Number(values.window);
      if (window !== undefined && !Number.isInteger(window))
        throw new CliError(`--window must be a whole number of seconds, got ${values.window}`, 2);
      const api = await client(ctx.env);
      const c = await api.call<Channel>('POST', base, {
        kind: arg,
        name,
        ...(arg === 'slack' ? { url: target } : { address: target }),
        ...(events ? { events } : {}),
        ...(window !== undefined ? { groupWindowSeconds: window } : {}),
      });
      if (values.json) return (json(ctx.o, c), 0);
      ctx.o.out(`added ${c.kind} channel ${c.id} (${c.target}) for ${c.events.join(', ')}`);
      return 0;
    }
    case 'test': {
      if (!arg) throw new CliError('notification-channels test needs the channel ID', 2);
      const api = await client(ctx.env);
      const r = await api.call<{ delivered: boolean; error: string | null }>(
        'POST',
        `${base}/${encodeURIComponent(arg)}/test`,
      );
      if (values.json) return (json(ctx.o, r), r.delivered ? 0 : 1);
      if (r.delivered) {
        ctx.o.out('test message delivered');
        return 0;
      }
      ctx.o.err(`not delivered: ${r.error ?? 'no answer'}`);
      return 1;
    }
    case 'deliveries': {
      if (!arg) throw new CliError('notification-channels deliveries needs the channel ID', 2);
      const api = await client(ctx.env);
      const items = await api.all<Delivery>(`${base}/${encodeURIComponent(arg)}/deliveries`);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['WHEN', 'TYPE', 'EVENTS', 'ATTEMPT', 'RESULT', 'ERROR'],
        items.map((d) => [
          d.createdAt,
          d.eventType,
          d.events,
          d.attempt,
          d.delivered ? 'delivered' : 'failed',
          d.error ?? '',
        ]),
        `no messages sent yet: selfdevop notification-channels test ${arg}`,
      );
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`notification-channels ${sub} needs the channel ID`, 2);
      const api = await client(ctx.env);
      await api.call('DELETE', `${base}/${encodeURIComponent(arg)}`);
      ctx.o.out(`removed notification channel ${arg}`);
      return 0;
    }
    default:
      throw new CliError(
        `unknown notification-channels command ${sub}: use list, add, test, deliveries or rm`,
        2,
      );
  }
}

export const notificationChannels: Command = {
  name: 'notification-channels',
  summary: 'Slack and e-mail notifications of the org: list, add, test, deliveries, rm',
  help: usage,
  run,
};
