import { client, parse, type Command, type CommandContext } from '../command.ts';
import { CliError } from '../config.ts';
import { json, table } from '../output.ts';
import { findProject, resolveService } from '../resolve.ts';

interface DataService {
  id: string;
  projectId: string;
  name: string;
  engine: string;
  version: string;
  nodeId: string;
  status: string;
  error: string | null;
  host: string;
  port: number;
  volume: string;
  settings: Record<string, unknown>;
  createdAt: string;
  links?: Link[];
}

interface Link {
  id: string;
  serviceId: string;
  envName: string;
}

const usage = `Usage:
  selfdevop data-services [list] [--project NAME|ID] [--json]
  selfdevop data-services create NAME --project NAME|ID --engine redis|mariadb|postgres
        [--version V] [--node ID] [--maxmemory-mb N] [--eviction POLICY]
        [--persistence none|rdb|aof] [--wait] [--json]
  selfdevop data-services show ID [--json]
  selfdevop data-services link ID --service NAME|ID [--project NAME|ID] [--env NAME]
  selfdevop data-services unlink ID LINK_ID
  selfdevop data-services rm ID --confirm NAME [--remove-volume]

create starts a Redis 7, MariaDB 10.11 or PostgreSQL 15 server for a project on a node
(one labelled role=data when there is one), its data on a named volume, reachable only
from the project's app containers; the password is generated and never shown. --wait
polls until it is ready (exit 1 when it failed). Redis's memory limit (256 MB), eviction
policy (noeviction) and persistence (rdb) are always set explicitly.
link hands its URL to a service as --env (REDIS_URL or DATABASE_URL by default) from
the service's next release on. rm needs the name again; the data volume is kept unless
--remove-volume (then the data is gone for good). A linked data service is not removed.

Example:
  selfdevop data-services create cache --project shop --engine redis --maxmemory-mb 512 --wait
  selfdevop data-services link dat_01… --service web`;

const path = (id: string) => `/api/data-services/${encodeURIComponent(id)}`;

async function run(ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(ctx.args, {
    project: { type: 'string' },
    engine: { type: 'string' },
    version: { type: 'string' },
    node: { type: 'string' },
    'maxmemory-mb': { type: 'string' },
    eviction: { type: 'string' },
    persistence: { type: 'string' },
    service: { type: 'string' },
    env: { type: 'string' },
    confirm: { type: 'string' },
    'remove-volume': { type: 'boolean' },
    wait: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const [sub = 'list', arg, arg2] = positionals;
  const api = await client(ctx.env);
  switch (sub) {
    case 'list': {
      let query = '';
      if (values.project) {
        const p = await findProject(api, values.project);
        if (!p) throw new CliError(`project ${values.project} not found`);
        query = `?projectId=${p.id}`;
      }
      const items = await api.all<DataService>(`/api/data-services${query}`);
      if (values.json) return (json(ctx.o, items), 0);
      table(
        ctx.o,
        ['ID', 'NAME', 'ENGINE', 'STATUS', 'HOST', 'NODE'],
        items.map((d) => [
          d.id,
          d.name,
          `${d.engine} ${d.version}`,
          d.status,
          `${d.host}:${d.port}`,
          d.nodeId,
        ]),
        'no data services yet: selfdevop data-services create NAME --project P --engine redis',
      );
      return 0;
    }
    case 'create': {
      if (!arg) throw new CliError('data-services create needs a NAME', 2);
      if (!values.project) throw new CliError('data-services create needs --project', 2);
      if (!values.engine)
        throw new CliError('data-services create needs --engine redis|mariadb|postgres', 2);
      const p = await findProject(api, values.project);
      if (!p) throw new CliError(`project ${values.project} not found`);
      const maxmemory = values['maxmemory-mb'];
      let ds = await api.call<DataService>('POST', '/api/data-services', {
        projectId: p.id,
        name: arg,
        engine: values.engine,
        ...(values.version ? { version: values.version } : {}),
        ...(values.node ? { nodeId: values.node } : {}),
        ...(maxmemory !== undefined ? { maxmemoryMb: Number(maxmemory) } : {}),
        ...(values.eviction ? { evictionPolicy: values.eviction } : {}),
        ...(values.persistence ? { persistence: values.persistence } : {}),
      });
      if (values.wait) {
        // Bounded: a server that needs longer than 5 minutes has failed for the user anyway.
        for (let i = 0; i < 300 && ds.status === 'provisioning'; i++) {
          await new Promise((r) => setTimeout(r, 1000));
          ds = await api.call<DataService>('GET', path(ds.id));
        }
      }
      if (values.json) return (json(ctx.o, ds), ds.status === 'failed' ? 1 : 0);
      ctx.o.out(
        `data service ${ds.name} (${ds.id}): ${ds.status}, ${ds.engine} ${ds.version} at ${ds.host}:${ds.port} on node ${ds.nodeId}`,
      );
      if (ds.status === 'failed') {
        ctx.o.err(`failed: ${ds.error ?? 'no reason given'}`);
        return 1;
      }
      return 0;
    }
    case 'show': {
      if (!arg) throw new CliError('data-services show needs the ID', 2);
      const ds = await api.call<DataService>('GET', path(arg));
      if (values.json) return (json(ctx.o, ds), 0);
      ctx.o.out(`${ds.name} (${ds.id}): ${ds.status}${ds.error ? ` (${ds.error})` : ''}`);
      ctx.o.out(
        `  ${ds.engine} ${ds.version} at ${ds.host}:${ds.port}, node ${ds.nodeId}, volume ${ds.volume}`,
      );
      if (Object.keys(ds.settings).length) ctx.o.out(`  settings: ${JSON.stringify(ds.settings)}`);
      for (const l of ds.links ?? [])
        ctx.o.out(`  linked: ${l.serviceId} as ${l.envName} (${l.id})`);
      return 0;
    }
    case 'link': {
      if (!arg) throw new CliError('data-services link needs the ID', 2);
      if (!values.service) throw new CliError('data-services link needs --service', 2);
      const svc = await resolveService(api, values.service, values.project);
      const link = await api.call<Link>('POST', `${path(arg)}/links`, {
        serviceId: svc.id,
        ...(values.env ? { envName: values.env } : {}),
      });
      if (values.json) return (json(ctx.o, link), 0);
      ctx.o.out(
        `linked as ${link.envName} (${link.id}); it arrives with the service's next release`,
      );
      return 0;
    }
    case 'unlink': {
      if (!arg || !arg2) throw new CliError('data-services unlink needs the ID and the LINK_ID', 2);
      await api.call('DELETE', `${path(arg)}/links/${encodeURIComponent(arg2)}`);
      ctx.o.out(`unlinked; the env var leaves with the service's next release`);
      return 0;
    }
    case 'rm':
    case 'remove': {
      if (!arg) throw new CliError(`data-services ${sub} needs the ID`, 2);
      if (!values.confirm) throw new CliError(`data-services ${sub} needs --confirm NAME`, 2);
      const volume = values['remove-volume'] ? 'remove' : 'keep';
      const q = new URLSearchParams({ confirm: values.confirm, volume });
      await api.call('DELETE', `${path(arg)}?${q}`);
      ctx.o.out(
        volume === 'remove'
          ? `removing data service ${arg} and its data volume`
          : `removing data service ${arg}; its data volume is kept on the node`,
      );
      return 0;
    }
    default:
      throw new CliError(
        `unknown data-services command ${sub}: use list, create, show, link, unlink or rm`,
        2,
      );
  }
}

export const dataServices: Command = {
  name: 'data-services',
  summary: 'Redis, MariaDB and PostgreSQL for a project: list, create, show, link, unlink, rm',
  help: usage,
  run,
};
