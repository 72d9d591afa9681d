import { printMetrics, rangeOf, type MetricsAnswer } from '../metrics.ts';
import { readFile } from 'node:fs/promises';
import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { appliesLines, json, table } from '../output.ts';

interface NodeRecord {
  id: string;
  name: string;
  kind?: 'engine' | 'swarm';
  dockerHost: string;
  address: string;
  drainMode: boolean;
  labels: Record<string, string>;
  tls?: { configured: boolean };
  ssh?: { configured: boolean };
  /** What the workers' node checks last saw (absent from servers before node checks). */
  reachability?: 'unknown' | 'reachable' | 'lost';
  reachabilitySince?: string | null;
  lastSeenAt?: string | null;
}

const credentialFlags = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'ssh-key': { type: 'string' },
  'ssh-host-key': { type: 'string' },
  'insecure-ignore-host-key': { type: 'boolean' },
} as const;

async function readFlagFile(flag: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(
      `cannot read --${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      2,
    );
  }
}

/** The tls and ssh fields of a node body, read from the files the flags name. */
async function credentialsFrom(
  values: Partial<Record<keyof typeof credentialFlags, string | boolean>>,
) {
  const body: { tls?: { ca: string; cert: string; key: string }; ssh?: Record<string, unknown> } =
    {};
  const tlsFlags = (['tls-ca', 'tls-cert', 'tls-key'] as const).filter(
    (f) => values[f] !== undefined,
  );
  if (tlsFlags.length > 0) {
    if (tlsFlags.length < 3)
      throw new CliError('--tls-ca, --tls-cert and --tls-key go together', 2);
    body.tls = {
      ca: await readFlagFile('tls-ca', String(values['tls-ca'])),
      cert: await readFlagFile('tls-cert', String(values['tls-cert'])),
      key: await readFlagFile('tls-key', String(values['tls-key'])),
    };
  }
  if (values['ssh-key'] !== undefined) {
    body.ssh = { privateKey: await readFlagFile('ssh-key', String(values['ssh-key'])) };
    if (values['ssh-host-key'] !== undefined) {
      body.ssh.hostKey = (
        await readFlagFile('ssh-host-key', String(values['ssh-host-key']))
      ).trim();
    }
    if (values['insecure-ignore-host-key']) body.ssh.insecureIgnoreHostKey = true;
  } else if (values['ssh-host-key'] !== undefined || values['insecure-ignore-host-key']) {
    throw new CliError('--ssh-host-key and --insecure-ignore-host-key need --ssh-key', 2);
  }
  return body;
}

const sub0 = (p: string[]) => p[0];

function labelsOf(flags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    const at = f.indexOf('=');
    if (at < 1) throw new CliError(`--label ${f}: use KEY=VALUE`, 2);
    out[f.slice(0, at)] = f.slice(at + 1);
  }
  return out;
}

interface ClusterAnswer {
  available: boolean;
  reason: string | null;
  members: {
    id: string;
    hostname: string;
    address: string;
    role: string;
    leader: boolean;
    availability: string;
    state: string;
    labels: Record<string, string>;
  }[];
}

/** The answer of a member's drain or undrain. */
interface MemberAnswer {
  member: { hostname: string; availability: string };
  leaving: { releaseId: string; replicas: number[] }[];
  kept: { releaseId: string; replicas: number[] }[];
}

const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '-';

const credentialsOf = (n: NodeRecord) =>
  [n.tls?.configured ? 'tls' : null, n.ssh?.configured ? 'ssh' : null].filter(Boolean).join(',') ||
  '-';

export const nodes: Command = {
  name: 'nodes',
  summary: 'List or add the Docker hosts releases run on, or rotate their credentials',
  help: `Usage:
  selfdevop nodes [--json]
  selfdevop nodes add NAME --docker-host URL --address ADDRESS [--swarm] [credentials]
  selfdevop nodes cluster NAME|ID [--json]   a Swarm node's members, read from its manager
  selfdevop nodes rotate NAME|ID credentials
  selfdevop nodes update NAME|ID [--name NEW] [--label KEY=value]… [--no-labels] [--address ADDRESS]
  selfdevop nodes drain NAME|ID      its replicas move to other nodes; it takes no new ones
  selfdevop nodes undrain NAME|ID    it takes new replicas again
  selfdevop nodes drain NAME|ID --member HOSTNAME|ID     Swarm's drain of one member of a
                                     Swarm node: its tasks leave the edge, then Swarm runs
                                     them on other members (each joins once healthy)
  selfdevop nodes undrain NAME|ID --member HOSTNAME|ID   the member takes tasks again
  selfdevop nodes rm NAME|ID [--force]   forget a drained or empty node (its containers are
                                     not touched); --force for a lost one whose services
                                     serve on other nodes (its replicas are written off)
  selfdevop nodes metrics NAME|ID [--range 1h|1d|1w] [--json]

--label KEY=VALUE (repeatable) on add: services with placement labels run only on nodes
that carry them all.

--docker-host is unix:///var/run/docker.sock, tcp://host:2376 (TLS) or ssh://user@host;
--address is where the edge reaches the containers published on that node.
--swarm registers a Swarm cluster by one of its managers (--docker-host, --address are
the manager's): releases then run as Swarm services on its members, and a service's
placement labels become Swarm constraints on the members' labels.

Credentials (read from files, sent once, never shown again):
  --tls-ca FILE --tls-cert FILE --tls-key FILE   for tcp:// (required off loopback)
  --ssh-key FILE --ssh-host-key FILE             for ssh:// (host key file: ssh-keyscan HOST)
  --ssh-key FILE --insecure-ignore-host-key      for ssh:// without host-key pinning

Examples:
  selfdevop nodes add local --docker-host unix:///var/run/docker.sock --address 127.0.0.1
  selfdevop nodes add cluster --swarm --docker-host tcp://10.0.0.7:2376 --address 10.0.0.7 --tls-ca ca.pem --tls-cert cert.pem --tls-key key.pem
  selfdevop nodes add web-1 --docker-host tcp://10.0.0.5:2376 --address 10.0.0.5 --tls-ca ca.pem --tls-cert cert.pem --tls-key key.pem
  selfdevop nodes rotate web-1 --tls-ca ca.pem --tls-cert cert.pem --tls-key key.pem
  selfdevop nodes update web-1 --label role=app --label region=fra

update renames a node, replaces its labels (--label for each, --no-labels for none) or
changes its address (judged as at registration; releases started from now on use it).`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      json: { type: 'boolean' },
      range: { type: 'string' },
      'docker-host': { type: 'string' },
      address: { type: 'string' },
      name: { type: 'string' },
      label: { type: 'string', multiple: true },
      'no-labels': { type: 'boolean' },
      swarm: { type: 'boolean' },
      force: { type: 'boolean' },
      member: { type: 'string' },
      ...credentialFlags,
    });
    if (sub0(positionals) === 'drain' || sub0(positionals) === 'undrain') {
      const [verb, target] = positionals as [string, string | undefined];
      if (!target) throw new CliError(`nodes ${verb} needs NAME or ID`, 2);
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === target || n.id === target,
      );
      if (!node) throw new CliError(`node ${target} not found`);
      if (values.member !== undefined) {
        const m = await api.call<MemberAnswer>(
          'POST',
          `/api/nodes/${node.id}/cluster/members/${encodeURIComponent(values.member)}/${verb}`,
        );
        if (values.json) return (json(ctx.o, m), 0);
        if (verb === 'undrain') {
          ctx.o.out(`member ${m.member.hostname} of swarm ${node.name} takes tasks again`);
          return 0;
        }
        const count = (l: MemberAnswer['leaving']) => l.reduce((n, x) => n + x.replicas.length, 0);
        ctx.o.out(
          `draining member ${m.member.hostname} of swarm ${node.name} (availability ${m.member.availability}): ${count(m.leaving)} replica(s) left the edge, Swarm runs them on other members`,
        );
        if (m.kept.length > 0)
          ctx.o.out(
            `${count(m.kept)} replica(s) were their release's only ones serving and stay in the edge until Swarm's replacement answers: ${m.kept.map((k) => k.releaseId).join(', ')}`,
          );
        return 0;
      }
      const r = await api.call<{ moving?: { releaseId: string; replicas: number }[] }>(
        'POST',
        `/api/nodes/${node.id}/${verb}`,
      );
      if (values.json) return (json(ctx.o, r), 0);
      ctx.o.out(
        verb === 'drain'
          ? `draining node ${node.name}: ${r.moving?.length ?? 0} release(s) moving off it`
          : `node ${node.name} takes replicas again`,
      );
      return 0;
    }
    const [sub = 'list', name] = positionals;
    if (sub === 'rm' || sub === 'delete') {
      if (!name) throw new CliError(`nodes ${sub} needs NAME or ID`, 2);
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === name || n.id === name,
      );
      if (!node) throw new CliError(`node ${name} not found`);
      await api.call('DELETE', `/api/nodes/${node.id}${values.force ? '?force=true' : ''}`);
      ctx.o.out(`deleted node ${node.name}`);
      return 0;
    }
    if (sub === 'add') {
      if (!name || !values['docker-host'] || !values.address) {
        throw new CliError('nodes add needs NAME, --docker-host and --address', 2);
      }
      const credentials = await credentialsFrom(values);
      const api = await client(ctx.env);
      const node = await api.call<{ id: string }>('POST', '/api/nodes', {
        name,
        ...(values.swarm ? { kind: 'swarm' } : {}),
        dockerHost: values['docker-host'],
        address: values.address,
        ...(values.label ? { labels: labelsOf(values.label) } : {}),
        ...credentials,
      });
      ctx.o.out(`added ${values.swarm ? 'swarm' : 'node'} ${name} (${node.id})`);
      return 0;
    }
    if (sub === 'rotate') {
      if (!name) throw new CliError('nodes rotate needs NAME or ID', 2);
      const credentials = await credentialsFrom(values);
      if (!credentials.tls && !credentials.ssh) {
        throw new CliError('nodes rotate needs --tls-ca/--tls-cert/--tls-key or --ssh-key', 2);
      }
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === name || n.id === name,
      );
      if (!node) throw new CliError(`node ${name} not found`);
      await api.call('PATCH', `/api/nodes/${node.id}`, credentials);
      ctx.o.out(
        `rotated the ${Object.keys(credentials).join(' and ')} credentials of node ${node.name}`,
      );
      return 0;
    }
    if (sub === 'metrics') {
      if (!name) throw new CliError('nodes metrics needs NAME or ID', 2);
      const range = rangeOf(values.range);
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === name || n.id === name,
      );
      if (!node) throw new CliError(`node ${name} not found`);
      const m = await api.call<MetricsAnswer>(
        'GET',
        `/api/nodes/${node.id}/metrics?range=${range}`,
      );
      if (values.json) return (json(ctx.o, m), m.available ? 0 : 1);
      return printMetrics(ctx.o, m);
    }
    if (sub === 'cluster') {
      if (!name) throw new CliError('nodes cluster needs NAME or ID', 2);
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === name || n.id === name,
      );
      if (!node) throw new CliError(`node ${name} not found`);
      const c = await api.call<ClusterAnswer>('GET', `/api/nodes/${node.id}/cluster`);
      if (values.json) return (json(ctx.o, c), c.available ? 0 : 1);
      if (!c.available) {
        ctx.o.err(`swarm ${node.name}: ${c.reason ?? 'unavailable'}`);
        return 1;
      }
      table(
        ctx.o,
        ['HOSTNAME', 'ADDRESS', 'ROLE', 'AVAILABILITY', 'STATE', 'LABELS', 'ID'],
        c.members.map((m) => [
          m.hostname,
          m.address,
          m.leader ? `${m.role} (leader)` : m.role,
          m.availability,
          m.state,
          labelText(m.labels),
          m.id,
        ]),
        'the manager reports no members',
      );
      return 0;
    }
    if (sub === 'update') {
      if (!name) throw new CliError('nodes update needs NAME or ID', 2);
      const labels: Record<string, string> = {};
      for (const l of values.label ?? []) {
        const at = l.indexOf('=');
        if (at <= 0) throw new CliError(`--label ${l}: expected KEY=value`, 2);
        labels[l.slice(0, at)] = l.slice(at + 1);
      }
      const body: Record<string, unknown> = {
        ...(values.name !== undefined ? { name: values.name } : {}),
        ...(values.label || values['no-labels'] ? { labels } : {}),
        ...(values.address !== undefined ? { address: values.address } : {}),
      };
      if (Object.keys(body).length === 0)
        throw new CliError('nodes update needs --name, --label, --no-labels or --address', 2);
      const api = await client(ctx.env);
      const node = (await api.all<NodeRecord>('/api/nodes')).find(
        (n) => n.name === name || n.id === name,
      );
      if (!node) throw new CliError(`node ${name} not found`);
      const updated = await api.call<NodeRecord & { applies: Record<string, string> }>(
        'PATCH',
        `/api/nodes/${node.id}`,
        body,
      );
      if (values.json) return (json(ctx.o, updated), 0);
      ctx.o.out(`updated node ${updated.name} (${updated.id})`);
      for (const line of appliesLines(updated.applies)) ctx.o.out(line);
      return 0;
    }
    if (sub !== 'list')
      throw new CliError(
        `unknown nodes command ${sub}: use list, add, rotate, update, drain, undrain, rm, metrics or cluster`,
        2,
      );
    const api = await client(ctx.env);
    const items = await api.all<NodeRecord>('/api/nodes');
    if (values.json) return (json(ctx.o, items), 0);
    table(
      ctx.o,
      [
        'NAME',
        'KIND',
        'STATE',
        'ENGINE',
        'LAST SEEN',
        'DOCKER HOST',
        'ADDRESS',
        'CREDENTIALS',
        'LABELS',
        'ID',
      ],
      items.map((n) => [
        n.name,
        n.kind ?? 'engine',
        n.drainMode ? 'draining' : 'active',
        // Older servers do not say; their nodes were never checked.
        n.reachability ?? 'unknown',
        n.lastSeenAt ?? '-',
        n.dockerHost,
        n.address,
        credentialsOf(n),
        Object.entries(n.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-',
        n.id,
      ]),
      'no nodes yet: selfdevop nodes add NAME --docker-host unix:///var/run/docker.sock --address 127.0.0.1',
    );
    return 0;
  },
};
