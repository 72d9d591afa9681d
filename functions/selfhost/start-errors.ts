/**
 * Start-up failures said the way a new user can act on them: what failed, why (the OS error
 * in words) and the variable that changes it. A bare errno or a rejection without a message
 * would otherwise reach the terminal as `undefined`.
 */
import { ConfigError } from '../../adapters/modes/config.ts';

/** A start-up step that failed; its message is complete and printed as it is. */
export class StartupError extends Error {
  constructor(what: string, why: string, fix?: string) {
    super(`${what}: ${why}${fix ? `\n  ${fix}` : ''}`);
    this.name = 'StartupError';
  }
}

interface OsError {
  code?: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
  hostname?: string;
  errors?: unknown[];
  cause?: unknown;
}

/** The OS error in words, or null when `e` is not one start-up knows. */
export function osReason(e: unknown): string | null {
  if (typeof e !== 'object' || e === null) return null;
  const err = e as OsError;
  const own = reasonOf(err);
  if (own !== null) return own;
  // Connecting to a name with several addresses fails with an AggregateError whose own
  // message is empty, and adapters wrap driver errors: the reason is underneath.
  if (Array.isArray(err.errors) && err.errors.length > 0) return osReason(err.errors[0]);
  if (err.cause !== undefined && err.cause !== e) return osReason(err.cause);
  return null;
}

function reasonOf(err: OsError): string | null {
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${err.port ?? '?'} is already in use`;
    case 'EADDRNOTAVAIL':
      return `${err.address ?? 'the address'} is not an address of this machine`;
    case 'EACCES':
    case 'EPERM':
      return err.syscall === 'bind' || err.syscall === 'listen'
        ? `binding port ${err.port ?? '?'} needs root (ports below 1024 are privileged)`
        : `permission denied on ${err.path ?? 'a file'}`;
    case 'ENOTDIR':
      return `part of ${err.path ?? 'the path'} is a file, not a directory`;
    case 'EROFS':
      return `${err.path ?? 'the path'} is on a read-only file system`;
    case 'ENOSPC':
      return 'the disk is full';
    case 'ENOENT':
      return `${err.path ?? 'a file'} does not exist`;
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${err.address ?? '?'}:${err.port ?? '?'}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host ${err.hostname ?? ''} is not known`.replace('  ', ' ');
    case 'ETIMEDOUT':
      return 'the connection timed out';
    // PostgreSQL's own refusals (SQLSTATE), which a wrong DATABASE_URL causes.
    case '28P01':
      return 'the server refused the password';
    case '28000':
      return 'the server refused this user';
    case '3D000':
      return 'the database does not exist';
    default:
      return null;
  }
}

/** An address or port that could not be bound (in use, privileged, not this machine's). */
export function isBindError(e: unknown): boolean {
  const err = e as OsError | null;
  return (
    typeof e === 'object' &&
    err !== null &&
    (err.syscall === 'bind' || err.syscall === 'listen') &&
    osReason(e) !== null
  );
}

/**
 * Runs one start-up step; an OS error becomes a StartupError saying `what` failed and `fix`
 * (the variable to change). Other errors keep their own message, prefixed with `what`.
 */
export async function explained<T>(what: string, fix: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof StartupError || e instanceof ConfigError) throw e;
    const why = osReason(e);
    if (why !== null) throw new StartupError(what, why, fix);
    throw new StartupError(what, messageOf(e));
  }
}

/** Some text for anything thrown, never `undefined`. */
export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message || e.name || 'failed without a message';
  if (e === undefined || e === null) return 'failed without saying why';
  return String(e);
}

/**
 * Runs one start-up step that waits on something outside the process, and never waits
 * silently: past `quietMs` (3 s) it says what it waits for through `say`, again every
 * `everyMs` (15 s) with the time so far, and at `timeoutMs` it fails with a StartupError
 * naming the wait, its likely `cause` and the `fix` (the variable or file to change). The step
 * itself is not cancelled: start-up exits on the failure and stops what it started.
 */
export async function waitingFor<T>(
  what: string,
  options: {
    timeoutMs: number;
    cause: string;
    fix: string;
    say: (line: string) => void;
    quietMs?: number;
    everyMs?: number;
  },
  run: () => Promise<T>,
): Promise<T> {
  const started = Date.now();
  const seconds = () => Math.round((Date.now() - started) / 1000);
  let ticker: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    options.say(`waiting for ${what} (up to ${options.timeoutMs / 1000} s)`);
    ticker = setInterval(
      () => options.say(`still waiting for ${what} (${seconds()} s so far)`),
      options.everyMs ?? 15_000,
    );
  }, options.quietMs ?? 3_000);
  let expire: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    expire = setTimeout(
      () =>
        reject(
          new StartupError(
            `${what} did not finish within ${options.timeoutMs / 1000} s (START_TIMEOUT_SECONDS)`,
            options.cause,
            options.fix,
          ),
        ),
      options.timeoutMs,
    );
  });
  try {
    return await Promise.race([run(), expired]);
  } finally {
    clearTimeout(first);
    clearInterval(ticker);
    clearTimeout(expire);
  }
}
