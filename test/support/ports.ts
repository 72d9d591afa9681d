import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * Ports for a process a test starts and must name a port to (selfdevop, Caddy, sshd, a
 * registry…), which is free when handed out and is bound later by somebody else.
 *
 * A port the kernel picked (`listen(0)`, then closed) is free for that instant only: the
 * kernel hands the same numbers to every process's `listen(0)` and outgoing connections, and
 * with three test files running at once CI saw a port taken in that gap twice ("port … is
 * already in use" from a selfdevop that had been given it, an empty body from an address
 * meant to refuse). So these come from below the kernel's ephemeral range, where the kernel
 * never picks, and each vitest fork (VITEST_POOL_ID, unique among the forks running at once)
 * has a block of its own. Within its block a file starts at a random place, so the file
 * after it in the same fork is unlikely to get the ports of one still stopping; and a port
 * that something on the machine listens on is skipped.
 */
const FIRST = 20_000;
const BLOCK = 1_500;
const BLOCKS = 8;

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
  } catch {
    return 32_768;
  }
}

const pool = Number(process.env.VITEST_POOL_ID ?? 1);
const blockStart = FIRST + ((Number.isInteger(pool) && pool > 0 ? pool - 1 : 0) % BLOCKS) * BLOCK;
// A machine whose ephemeral range reaches down into the blocks gets the kernel's ports.
const ownBlocks = ephemeralLow() >= FIRST + BLOCKS * BLOCK;
let next = Math.floor(Math.random() * BLOCK);

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(undefined) : reject(err),
    );
    // The wildcard address: taken if anybody listens on the port on any IPv4 address.
    server.listen(port, '0.0.0.0', () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

/** A port nobody listens on right now (closed again before it is returned). */
export async function freePort(): Promise<number> {
  if (!ownBlocks) return (await tryListen(0))!;
  for (let tries = 0; tries < BLOCK; tries++) {
    const port = blockStart + (next++ % BLOCK);
    const free = await tryListen(port);
    if (free !== undefined) return free;
  }
  throw new Error(`no free port in ${blockStart}-${blockStart + BLOCK - 1}`);
}
