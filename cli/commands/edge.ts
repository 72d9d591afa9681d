import { client, parse, type Command } from '../command.ts';
import { json, table } from '../output.ts';

interface EdgeStatus {
  reachable: boolean;
  error: string | null;
  version: string | null;
  routes: { expected: number; present: number; missing: string[] };
  lastRebuild: { at: string; restoredRoutes: number; restoredHosts: number } | null;
  certificates: {
    hostname: string;
    status: string;
    issuer: string | null;
    notAfter: string | null;
    daysLeft: number | null;
    detail: string | null;
  }[];
}

export const edge: Command = {
  name: 'edge',
  summary: "The edge's state for your org: reachable, routes, last rebuild, certificates",
  help: `Usage: selfdevop edge [--json]

Says whether the edge (Caddy) answers, how many of your org's live service environments it
routes (and which it lacks: the edge-rebuild job puts them back within a minute), when it
was last rebuilt from the database, and the certificate it serves for each of your custom
domains with its expiry. Exits 1 when the edge does not answer or lacks a route.

Example:
  selfdevop edge`,
  async run(ctx) {
    const { values } = parse(ctx.args, { json: { type: 'boolean' } });
    const api = await client(ctx.env);
    const s = await api.call<EdgeStatus>('GET', '/api/edge');
    const ok = s.reachable && s.routes.missing.length === 0;
    if (values.json) return (json(ctx.o, s), ok ? 0 : 1);
    ctx.o.out(`edge: ${s.reachable ? 'reachable' : `NOT reachable (${s.error})`}`);
    ctx.o.out(
      `routes: ${s.routes.present} of ${s.routes.expected} present${s.routes.missing.length ? `; missing ${s.routes.missing.join(', ')}` : ''}`,
    );
    ctx.o.out(
      `last rebuild from the database: ${s.lastRebuild ? `${s.lastRebuild.at} (restored ${s.lastRebuild.restoredRoutes} routes, ${s.lastRebuild.restoredHosts} hosts)` : 'not yet'}`,
    );
    table(
      ctx.o,
      ['DOMAIN', 'CERTIFICATE', 'ISSUER', 'EXPIRES', 'DAYS LEFT'],
      s.certificates.map((c) => [
        c.hostname,
        c.status,
        c.issuer ?? '',
        c.notAfter ?? '',
        c.daysLeft ?? c.detail ?? '',
      ]),
      'no custom domains with a certificate to check',
    );
    return ok ? 0 : 1;
  },
};
