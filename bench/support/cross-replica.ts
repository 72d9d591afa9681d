/**
 * bench:data's third part (issue 15, goal 3): a Socket.IO app of three sticky replicas linked
 * to one Redis data service, deployed through selfdevop's API behind a real Caddy; one client
 * per replica through the edge (each pinned by the sticky cookie); every replica's client
 * broadcasts `rounds` times and every client must hear every broadcast. Both transports:
 * WebSocket after the upgrade (what browsers end up on) and long-polling alone (every
 * message a new request through the edge, so it needs the stickiness too).
 */
import type { Requester } from '../../test/support/http.ts';
import {
  broadcastFrom,
  clientPerReplica,
  deploySocketioApp,
  type EdgeClient,
  type Transports,
  untilUpgraded,
} from '../../test/support/socketio.ts';

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? null
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

export interface CrossReplicaResult {
  detail: Record<string, unknown>;
  /** Every broadcast, on both transports, reached the clients of all three replicas. */
  crossReplicaBroadcast: boolean;
}

export async function measureCrossReplicaBroadcast(options: {
  req: Requester;
  auth: { token: string; headers: Record<string, string> };
  projectId: string;
  edgePort: number;
  image: string;
  rounds?: number;
  onCreated: (redis: { volume: string; network: string }) => void;
  log: (line: string) => void;
}): Promise<CrossReplicaResult> {
  const rounds = options.rounds ?? 10;
  const replicas = 3;
  const started = performance.now();
  const app = await deploySocketioApp(options.req, options.auth, {
    projectId: options.projectId,
    name: 'chat',
    image: options.image,
    replicas,
    onCreated: options.onCreated,
  });
  const deployMs = Math.round(performance.now() - started);
  if (app.release.status !== 'completed')
    return {
      detail: { deployMs, release: { status: app.release.status, error: app.release.error } },
      crossReplicaBroadcast: false,
    };
  options.log(`socketio: deployed ${replicas} replicas in ${deployMs} ms`);

  const byTransport: Record<string, unknown> = {};
  let allReached = true;
  const modes: [string, Transports | undefined][] = [
    ['websocket', undefined],
    ['polling', ['polling']],
  ];
  for (const [name, transports] of modes) {
    let clients: EdgeClient[] = [];
    try {
      clients = await clientPerReplica(options.edgePort, app.service.host, replicas, {
        ...(transports ? { transports } : {}),
      });
      if (name === 'websocket') await untilUpgraded(clients);
      const latencies: number[] = [];
      let sent = 0;
      let missed = 0;
      for (let round = 0; round < rounds; round++)
        for (let sender = 0; sender < clients.length; sender++) {
          const r = await broadcastFrom(clients, sender);
          sent++;
          for (const ms of Object.values(r.receivedMs))
            if (ms === null) missed++;
            else latencies.push(ms);
        }
      latencies.sort((a, b) => a - b);
      const replicasHeld = new Set(clients.map((c) => c.hostname)).size;
      const ok = missed === 0 && replicasHeld === replicas;
      allReached &&= ok;
      byTransport[name] = {
        replicasHeld,
        transports: clients.map((c) => c.socket.io.engine.transport.name),
        broadcasts: sent,
        deliveriesExpected: sent * clients.length,
        missed,
        deliveryP50Ms: percentile(latencies, 50),
        deliveryMaxMs: latencies.at(-1) ?? null,
      };
      options.log(`socketio: ${name}: ${sent} broadcasts, ${missed} deliveries missed`);
    } catch (e) {
      allReached = false;
      byTransport[name] = { error: (e as Error).message };
    } finally {
      for (const c of clients) c.socket.close();
    }
  }
  return {
    detail: { replicas, deployMs, rounds, byTransport },
    crossReplicaBroadcast: allReached,
  };
}
