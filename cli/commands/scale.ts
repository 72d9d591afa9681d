import { client, parse, type Command } from '../command.ts';
import { CliError } from '../config.ts';
import { resolveService } from '../resolve.ts';
import { json } from '../output.ts';

interface ScaleResult {
  serviceId: string;
  environment: string;
  replicas: number;
  releaseId: string | null;
  current: number;
}

/** The verb that changes how many replicas a service environment runs (subject: services). */
export const scale: Command = {
  name: 'scale',
  summary: 'Set how many replicas a service runs, or stop and start it, without a deploy',
  help: `Usage:
  selfdevop scale SERVICE REPLICAS [--environment NAME] [--project NAME|ID] [--json]
  selfdevop scale SERVICE --stop  [--environment NAME] [--project NAME|ID]
  selfdevop scale SERVICE --start [--replicas N] [--environment NAME] [--project NAME|ID]

REPLICAS is 0 to 50. New replicas join the edge once their health check passes; removed
ones leave the edge first, then drain for the service's drainSeconds, then stop. --stop
scales to 0 and takes the route off the edge; --start brings N (default 1) back.

Examples:
  selfdevop scale web 3
  selfdevop scale web --stop --environment staging`,
  async run(ctx) {
    const { values, positionals } = parse(ctx.args, {
      json: { type: 'boolean' },
      stop: { type: 'boolean' },
      start: { type: 'boolean' },
      replicas: { type: 'string' },
      environment: { type: 'string' },
      project: { type: 'string' },
    });
    const [name, count] = positionals;
    if (!name) throw new CliError('scale needs the service NAME or ID', 2);
    if (values.stop && values.start) throw new CliError('give --stop or --start, not both', 2);
    const env = values.environment ? { environment: values.environment } : {};
    let verb: 'scale' | 'stop' | 'start' = 'scale';
    let body: Record<string, unknown> = { ...env };
    const number = (s: string, what: string) => {
      if (!/^\d+$/.test(s)) throw new CliError(`${what} must be a whole number from 0 to 50`, 2);
      return Number(s);
    };
    if (values.stop) verb = 'stop';
    else if (values.start) {
      verb = 'start';
      if (values.replicas !== undefined) body.replicas = number(values.replicas, '--replicas');
    } else {
      if (count === undefined)
        throw new CliError('scale needs REPLICAS (0 to 50), --stop or --start', 2);
      body = { ...env, replicas: number(count, 'REPLICAS') };
    }
    const api = await client(ctx.env);
    const svc = await resolveService(api, name, values.project);
    const r = await api.call<ScaleResult>('POST', `/api/services/${svc.id}/${verb}`, body);
    if (values.json) return (json(ctx.o, r), 0);
    ctx.o.out(
      r.releaseId
        ? `${svc.name} (${r.environment}): ${r.current} → ${r.replicas} replicas; release ${r.releaseId} changes now`
        : `${svc.name} (${r.environment}): ${r.replicas} replicas from its next deploy (nothing deployed yet)`,
    );
    return 0;
  },
};
