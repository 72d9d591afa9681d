import type { ApiClient } from '../client.ts';
import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table, type Output } from '../output.ts';
import { isId, resolveService, type Domain } from '../resolve.ts';

async function findDomain(api: ApiClient, ref: string | undefined): Promise<Domain> {
  if (!ref) throw new CliError('which domain? pass its hostname or id', 2);
  if (isId(ref, 'dom')) return api.call<Domain>('GET', `/api/domains/${ref}`);
  const host = ref.toLowerCase().replace(/\.$/, '');
  const found = (await api.all<Domain>('/api/domains')).find((d) => d.hostname === host);
  if (!found)
    throw new CliError(
      `domain ${host} not found: add it with selfdevop domains add ${host} --service NAME`,
    );
  return found;
}

/** When the served certificate runs out, as days left; "expiring" within the alert's default 14 days. */
function certificateLine(d: Domain): string {
  const days = d.certDaysLeft ?? 0;
  const left = days < 0 ? 'EXPIRED' : `${days} day${days === 1 ? '' : 's'} left`;
  const warn = days >= 0 && days < 14 ? ', expiring' : '';
  return `expires ${d.certNotAfter} (${left}${warn})${d.certIssuer ? `, issued by ${d.certIssuer}` : ''}`;
}

function showDomain(o: Output, d: Domain): void {
  o.out(`${d.hostname}  ${d.status}  (dns ${d.dnsStatus}, tls ${d.tlsStatus})  ${d.id}`);
  if (d.lastError) o.out(`last error: ${d.lastError}`);
  if (d.certNotAfter) o.out(`certificate: ${certificateLine(d)}`);
  if (d.status !== 'active') {
    o.out('DNS records to set at your DNS provider:');
    table(
      o,
      ['TYPE', 'NAME', 'VALUE'],
      d.records.map((r) => [r.type, r.name, r.value]),
      '(none)',
    );
  }
}

const usage = `Usage:
  selfdevop domains [list] [--json]
  selfdevop domains add HOSTNAME --service NAME|ID [--environment ENV] [--json]
  selfdevop domains verify HOSTNAME|ID
  selfdevop domains status HOSTNAME|ID [--wait] [--json]
  selfdevop domains rm HOSTNAME|ID

add prints the DNS records to create: a TXT record proving you control the name, and a
CNAME (an A record for an apex) sending its traffic to the edge. The domain moves through
pending_dns → dns_verified → cert_pending → active; verify checks now instead of at the
next poll; status --wait follows it until active or failed (at most 10 minutes).

Example:
  selfdevop domains add shop.example.com --service web`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    service: { type: 'string' },
    project: { type: 'string' },
    environment: { type: 'string' },
    wait: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', ref] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'list': {
      const items = await api.all<Domain>('/api/domains');
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['HOSTNAME', 'STATUS', 'DNS', 'TLS', 'CERT DAYS LEFT', 'ID', 'LAST ERROR'],
        items.map((d) => [
          d.hostname,
          d.status,
          d.dnsStatus,
          d.tlsStatus,
          d.certDaysLeft === null ? '-' : String(d.certDaysLeft),
          d.id,
          d.lastError,
        ]),
        'no custom domains yet: selfdevop domains add HOSTNAME --service NAME',
      );
      return 0;
    }
    case 'add': {
      if (!ref) throw new CliError('domains add needs a HOSTNAME', 2);
      const service = await resolveService(api, values.service, values.project);
      const d = await api.call<Domain>('POST', '/api/domains', {
        serviceId: service.id,
        hostname: ref,
        ...(values.environment ? { environment: values.environment } : {}),
      });
      if (values.json) return (json(ctx.o, d), 0);
      showDomain(ctx.o, d);
      ctx.o.out(`then run: selfdevop domains verify ${d.hostname}`);
      return 0;
    }
    case 'verify': {
      const d = await findDomain(api, ref);
      await api.call('POST', `/api/domains/${d.id}/verify`);
      ctx.o.out(
        `checking ${d.hostname} now; follow it with selfdevop domains status ${d.hostname} --wait`,
      );
      return 0;
    }
    case 'status': {
      let d = await findDomain(api, ref);
      const deadline = Date.now() + 10 * 60_000;
      let last = '';
      while (
        values.wait &&
        d.status !== 'active' &&
        d.status !== 'failed' &&
        Date.now() < deadline
      ) {
        if (d.status !== last && !values.json)
          ctx.o.out(`${d.hostname}: ${d.status}${d.lastError ? ` (${d.lastError})` : ''}`);
        last = d.status;
        await new Promise((r) => setTimeout(r, 2000));
        d = await api.call<Domain>('GET', `/api/domains/${d.id}`);
      }
      if (values.json) json(ctx.o, d);
      else showDomain(ctx.o, d);
      return values.wait && d.status !== 'active' ? 1 : 0;
    }
    case 'rm':
    case 'remove': {
      const d = await findDomain(api, ref);
      await api.call('DELETE', `/api/domains/${d.id}`);
      ctx.o.out(`removed ${d.hostname}: its route and certificate are gone`);
      return 0;
    }
    default:
      throw new CliError(`unknown domains command ${sub}: use list, add, verify, status or rm`, 2);
  }
}

export const domains: Command = {
  name: 'domains',
  summary: 'Custom domains: add, verify, status, rm',
  help: usage,
  run,
};
