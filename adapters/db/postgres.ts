/**
 * The one file that imports `pg`. Everything else talks to PostgreSQL through the
 * structural `SqlClient`/`Database` types below, so the store, the migrator and pg-boss
 * never load the driver themselves.
 */
import pg from 'pg';
import { CoreError, Unavailable } from '../../core/errors.ts';

export interface SqlResult<R> {
  rows: R[];
  rowCount: number;
}

/** Anything that runs one statement: a pooled connection, a transaction, a session. */
export interface SqlClient {
  query<R = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<SqlResult<R>>;
}

export interface TransactionOptions {
  /**
   * Settings local to the transaction (`set_config(name, value, true)`), such as the org
   * row-level security confines it to; each is set before the first statement runs.
   */
  settings?: Readonly<Record<string, string>>;
  /**
   * While fn has only read, run each plain SELECT alone with the settings, in one implicit
   * transaction ended by its Sync (`ReadWithSettings`): one round trip and two statements
   * instead of BEGIN, the settings, the SELECT and COMMIT in turn. Only for fns whose SELECTs have no side effects (no
   * advisory locks, no sequences): under READ COMMITTED each statement takes its own
   * snapshot anyway, so such reads see what they would inside one transaction.
   */
  readsAlone?: boolean;
}

/**
 * A pool of connections; `transaction` runs fn as one transaction on one of them. The pool
 * pipelines: BEGIN and the settings travel with fn's first statement in one round trip.
 */
export interface Database extends SqlClient {
  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * LISTEN on `channel` on a connection of its own (never one of the pool's), subscribing
   * again after it drops; `onReconnect` runs after every subscribe, the first included, so a
   * listener reloads what it may have missed.
   */
  listen(
    channel: string,
    onNotification: (payload: string) => void,
    onReconnect: () => void,
  ): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

/** One dedicated connection (advisory locks are held per session). */
export interface SqlSession extends SqlClient {
  end(): Promise<void>;
}

/** What PostgreSQL errors carry that callers branch on, typed without the driver. */
export interface PgErrorLike {
  code?: string;
  constraint?: string;
  detail?: string;
  message: string;
}

export const isPgError = (e: unknown): e is PgErrorLike =>
  e instanceof Error && typeof (e as { code?: unknown }).code === 'string';

export const defaultAppRole = 'selfdevop_app';

export interface PoolOptions {
  /**
   * Role every connection switches to before its first query. The control plane logs in as
   * `selfdevop_api`, which holds no more than this role already (migrations/0008); the
   * switch keeps an owner's DATABASE_URL confined by row-level security too, though such a
   * session could RESET ROLE, which is why the logins exist. null keeps the login role.
   */
  appRole?: string | null;
  max?: number;
  connectTimeoutMs?: number;
  /** Called when an idle connection dies (server restart); the pool replaces it. */
  onIdleError?: (error: Error) => void;
}

// SQLSTATE classes and Node socket codes meaning "the server is not there right now",
// as opposed to "the statement is wrong". Only these become Unavailable (503).
const connectionCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, recovery)
  '53300', // too_many_connections
]);

const connectionMessages = [
  'Connection terminated',
  'connection timeout',
  'Client has encountered a connection error',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
];

/** True when the error says the database cannot be reached, not that the query failed. */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && (connectionCodes.has(code) || code.startsWith('08'))) return true;
  if (e instanceof AggregateError) return e.errors.some(isConnectionError);
  return connectionMessages.some((m) => e.message.includes(m));
}

/** Connection failures become core Unavailable('database'); everything else passes through. */
export function fromPgError(e: unknown): unknown {
  if (!isConnectionError(e)) return e;
  const err = e as Error & { code?: string };
  const reason = err.message || err.code || 'connection failed';
  const mapped = new Unavailable('database', reason);
  mapped.cause = e;
  return mapped;
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** A plain SELECT: it takes no row locks and writes nothing, so it needs no transaction of its own. */
export const isReadOnly = (text: string): boolean =>
  /^\s*select\b/i.test(text) && !/\bfor\s+(update|share)\b/i.test(text);

// Asked of every statement a transaction sends; the texts come from a bounded set of
// templates, so each answer is remembered (the same bound as the prepared statements).
const readOnlyTexts = new Map<string, boolean>();
function isReadOnlyText(text: string): boolean {
  let readOnly = readOnlyTexts.get(text);
  if (readOnly === undefined) {
    readOnly = isReadOnly(text);
    if (readOnlyTexts.size < 2000) readOnlyTexts.set(text, readOnly);
  }
  return readOnly;
}

// Statement texts come from a bounded set of templates, so naming each one lets every
// connection parse and plan it once and then only bind and execute.
// pg copies every config it is given property by property, so a named statement's name and
// text sit on a shared prototype and only its values are copied per call.
type Statement = Readonly<{ name: string; text: string }>;
const statements = new Map<string, Statement>();
/** The name text is prepared under; none for several statements, or once the bound is reached. */
function statementFor(text: string): Statement | undefined {
  if (text.includes(';')) return undefined;
  let statement = statements.get(text);
  if (!statement && statements.size < 2000) {
    statement = { name: `sdo_${statements.size}`, text };
    statements.set(text, statement);
  }
  return statement;
}
function prepared(text: string, values?: readonly unknown[]): pg.QueryConfig | string {
  if (!values || values.length === 0) return text;
  const statement = statementFor(text);
  if (!statement) return { text, values: values as unknown[] };
  const config = Object.create(statement) as pg.QueryConfig;
  config.values = values as unknown[];
  return config;
}

/** Sets one of a transaction's settings (TransactionOptions.settings), local to it. */
const settingText = 'select set_config($1, $2, true)';

/** The parts of pg's Connection a read sent alone writes to (pg-protocol's frontend messages). */
interface WireConnection {
  parsedStatements: Record<string, string | undefined>;
  submittedNamedStatements: Record<string, string | undefined>;
  parse(message: { text: string; name?: string }): void;
  bind(message: { portal: string; statement?: string; values: unknown[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal: string }): void;
  sync(): void;
}

/** pg's Query as it is driven by the client (its handlers are not in pg's types). */
interface QueryInternals {
  name?: string;
  text: string;
  values?: unknown[];
  handleDataRow(message: unknown): void;
  handleCommandComplete(message: unknown, connection: WireConnection): void;
  handleError(error: Error, connection: WireConnection): void;
}

const prepareValue = (pg as unknown as { utils: { prepareValue(value: unknown): unknown } }).utils
  .prepareValue;

const isParsed = (c: WireConnection, name: string | undefined): boolean =>
  name !== undefined &&
  (c.parsedStatements[name] !== undefined || c.submittedNamedStatements[name] !== undefined);

/**
 * A read that runs alone with the transaction's settings: each `set_config(…, true)`, then
 * the statement, then one Sync. PostgreSQL runs the messages up to a Sync as one implicit
 * transaction, so the settings hold for the statement and end with it, as they would
 * between BEGIN and COMMIT — which, as statements of their own, cost the server two more
 * commands and the client two more queries and answers per read. Values are mapped before
 * anything is written, so a value pg cannot send fails the read without touching the wire.
 *
 * A subclass of pg's Query, which the pipelining client accepts; while the settings are
 * answered it carries their statement's name and text, because the client files a parse
 * (and forgets a failed one) under the name and text of the query it is answering.
 */
class ReadWithSettings extends pg.Query {
  private settingsLeft = 0;
  private readonly settings: unknown[][];
  private readonly setting: { name?: string; text: string };
  private readonly statement: { name?: string; text: string };

  constructor(
    settings: readonly (readonly unknown[])[],
    text: string,
    values?: readonly unknown[],
  ) {
    const named = statementFor(text);
    // Built from the text alone, the rest set after: pg copies a config object through its
    // property descriptors (cloneQueryConfig), which cost more than everything else here.
    super(text);
    const self = this as unknown as QueryInternals & { queryMode?: string };
    self.values = (values ?? []).map((v) => prepareValue(v));
    if (named) self.name = named.name;
    // pg's own (untyped) switch to the extended protocol, so prepare() is what runs.
    self.queryMode = 'extended';
    this.settings = settings.map((pair) => pair.map((v) => prepareValue(v)));
    this.setting = statementFor(settingText) ?? { text: settingText };
    this.statement = named ?? { text };
  }

  /** The prepared statements it uses, for `canFollow`. */
  statementNames(): (string | undefined)[] {
    return [this.setting.name, this.statement.name];
  }

  // Called by Query#submit with the socket corked: every message leaves in one write.
  prepare(connection: WireConnection): void {
    const self = this as unknown as QueryInternals;
    const setting = this.setting;
    for (const values of this.settings) {
      if (!isParsed(connection, setting.name)) {
        connection.parse(setting);
        if (setting.name) connection.submittedNamedStatements[setting.name] = setting.text;
      }
      connection.bind({ portal: '', statement: setting.name, values });
      connection.execute({ portal: '' });
    }
    const { name } = this.statement;
    if (!isParsed(connection, name)) {
      connection.parse(this.statement);
      if (name) connection.submittedNamedStatements[name] = this.statement.text;
    }
    connection.bind({ portal: '', statement: name, values: self.values ?? [] });
    connection.describe({ type: 'P', name: '' });
    connection.execute({ portal: '' });
    connection.sync();
    this.settingsLeft = this.settings.length;
    if (this.settingsLeft > 0) this.answering(setting);
  }

  private answering(statement: { name?: string; text: string }): void {
    const self = this as unknown as QueryInternals;
    self.name = statement.name;
    self.text = statement.text;
  }

  handleDataRow(message: unknown): void {
    // set_config's own row: nothing to keep.
    if (this.settingsLeft === 0)
      (pg.Query.prototype as unknown as QueryInternals).handleDataRow.call(this, message);
  }

  handleCommandComplete(message: unknown, connection: WireConnection): void {
    if (this.settingsLeft === 0) {
      (pg.Query.prototype as unknown as QueryInternals).handleCommandComplete.call(
        this,
        message,
        connection,
      );
      return;
    }
    if (--this.settingsLeft === 0) this.answering(this.statement);
  }

  handleError(error: Error, connection: WireConnection): void {
    // PostgreSQL skipped what followed the failure: a parse it never answered must be sent again.
    for (const name of [this.setting.name, this.statement.name]) {
      if (name !== undefined && connection.parsedStatements[name] === undefined)
        delete connection.submittedNamedStatements[name];
    }
    (pg.Query.prototype as unknown as QueryInternals).handleError.call(this, error, connection);
  }
}

/**
 * A tenant read as the store sends it (each setting, then the statement, one Sync), on a
 * client of the caller's: bench:api's database floor sends exactly these messages, without
 * HTTP, so its ratio measures what the API adds and nothing else.
 */
export function readWithSettings(
  client: pg.ClientBase,
  settings: readonly (readonly [string, string])[],
  text: string,
  values?: readonly unknown[],
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    client.query(
      new ReadWithSettings(settings, text, values) as unknown as pg.QueryConfig,
      (error: Error | null, result: pg.QueryResult) => (error ? reject(error) : resolve(result)),
    );
  });
}

const timestamptzOid = 1184;
const defaultTimestamptz = pg.types.getTypeParser(timestamptzOid, 'text');
// PostgreSQL's ISO output of a UTC timestamptz, years 1000 to 9999: what Date would round-trip.
// Tested, not matched: the parts sit at fixed places, and a match's array and captures were
// most of what a row's times cost.
const utcTimestamp = /^[1-9]\d{3}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?\+00$/;

/**
 * A timestamptz as the ISO string `Date#toISOString` gives (milliseconds, truncated), the
 * form every model holds: building a Date per time column only to print it again cost more
 * than the rest of a row. Other offsets and eras go through pg's own parser and are printed
 * the same way, so a row is a model as PostgreSQL answers it, whatever the session's time
 * zone; infinities stay as pg gives them.
 */
export function parseTimestamptz(text: string): unknown {
  if (!utcTimestamp.test(text)) {
    const parsed = defaultTimestamptz(text);
    return parsed instanceof Date ? parsed.toISOString() : parsed;
  }
  // `YYYY-MM-DD HH:MM:SS` is 19 characters; `.` and 1 to 6 digits may follow, then `+00`.
  const end = text.length - 3;
  const digits = end - 20;
  if (digits >= 3) return `${text.slice(0, 10)}T${text.slice(11, 23)}Z`;
  const fraction = digits <= 0 ? '000' : text.slice(20, end).padEnd(3, '0');
  return `${text.slice(0, 10)}T${text.slice(11, 19)}.${fraction}Z`;
}

/** The pool's type parsers: pg's own, with timestamptz as an ISO string. */
export const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === timestamptzOid && format !== 'binary'
      ? parseTimestamptz
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

const toSqlResult = <R>(r: pg.QueryResult): SqlResult<R> => ({
  rows: r.rows as R[],
  rowCount: r.rowCount ?? 0,
});

/**
 * A pool for DATABASE_URL (the `selfdevop_api` login). By default every new connection also
 * runs `SET ROLE selfdevop_app` before it is handed out, so the application is subject to
 * row-level security even on an owner's URL.
 * @example const db = fromDatabaseUrl(config.DATABASE_URL);
 */
export function fromDatabaseUrl(url: string, options: PoolOptions = {}): Database {
  const appRole = options.appRole === undefined ? defaultAppRole : options.appRole;
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    // Statements a caller sends without waiting go out together and are answered in one
    // round trip; a caller that awaits each one sees no difference.
    pipeline: true,
    types,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    // Awaited by the pool before the client is used; a failure (role missing because the
    // database is not migrated) fails the checkout instead of handing out an owner session.
    onConnect: appRole
      ? (client) => client.query(`set role ${quoteIdent(appRole)}`).then(() => undefined)
      : undefined,
  });
  // An idle client whose server went away emits 'error'; without a listener that would
  // crash the process. The pool drops the client and opens a fresh one on next use.
  pool.on('error', (error) => options.onIdleError?.(error));
  return fromPool(pool, pool.options.max ?? 10, url);
}

const swallow = (): void => undefined;

// Taken when the module loads: a test that fakes timers later must not hold real sockets' writes.
const afterTurn = setImmediate;

/** How many reads sent alone share one connection at most before another is taken. */
const readsPerConnection = 8;

function fromPool(pool: pg.Pool, maxClients: number, url: string): Database {
  let closed = false;
  const guarded = new WeakSet<pg.PoolClient>();
  const listeners = new Set<{ close(): Promise<void> }>();

  interface Lease {
    client: pg.PoolClient;
    /** Back to the pool; with an error the connection is destroyed instead of reused. */
    release: (error?: unknown) => void;
  }

  async function checkout(): Promise<Lease> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (e) {
      throw fromPgError(e);
    }
    // While a client is checked out the pool's idle listener is detached, so a server
    // going away between two queries would emit an unhandled 'error' and kill the
    // process. Swallow it here: the next query on the client fails and says why. Attached
    // once per connection and left on (while idle the pool's own listener also hears it
    // and drops the connection): adding and removing a listener on every checkout cost
    // more than the rest of the lease.
    if (!guarded.has(client)) {
      guarded.add(client);
      client.on('error', swallow);
    }
    return {
      client,
      release: (error?: unknown) =>
        client.release(error === undefined ? undefined : error instanceof Error ? error : true),
    };
  }

  const run = <R>(
    client: pg.PoolClient,
    text: string,
    values?: readonly unknown[],
  ): Promise<SqlResult<R>> => pipeline<R>(client, [prepared(text, values)], 0);

  /**
   * Runs `send` with the connection's socket corked, so the statements it sends leave in
   * one write (pg writes each statement on its own, and a system call costs more than
   * building the messages).
   */
  function corked<T>(client: pg.PoolClient, send: () => T): T {
    const stream = (
      client as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } }
    ).connection?.stream;
    stream?.cork?.();
    try {
      return send();
    } finally {
      stream?.uncork?.();
    }
  }

  /**
   * Sends statements without waiting between them (one round trip on a pipelining client)
   * and answers the one at `index`, or the first failure in order once all have answered.
   * Each statement is given a callback instead of being awaited: pg then makes no promise
   * and no `.catch` of its own per statement, and one promise answers the whole pipeline.
   */
  function pipeline<R>(
    client: pg.PoolClient,
    statements: (string | pg.QueryConfig)[],
    index: number,
  ): Promise<SqlResult<R>> {
    return new Promise((resolve, reject) => {
      let pending = statements.length;
      let answer: pg.QueryResult | undefined;
      // Indexed, not in arrival order: a statement pg refuses before sending fails on a
      // later tick than the answers to those sent before it.
      let failures: unknown[] | undefined;
      const settle = (at: number, error: Error | null, result?: pg.QueryResult) => {
        if (error) (failures ??= [])[at] = error;
        else if (at === index) answer = result;
        if (--pending > 0) return;
        if (failures) reject(failures.find((e) => e !== undefined));
        else resolve(toSqlResult<R>(answer!));
      };
      for (let at = 0; at < statements.length; at++) {
        client.query(statements[at]!, (error: Error | null, result: pg.QueryResult) =>
          settle(at, error, result),
        );
      }
    });
  }

  /** A read before any write: its settings and itself in one implicit transaction, one write. */
  function readAlone<R>(
    client: pg.PoolClient,
    settings: readonly (readonly unknown[])[],
    text: string,
    values?: readonly unknown[],
  ): Promise<SqlResult<R>> {
    // Several statements in one text cannot be prepared: they go as BEGIN, …, COMMIT.
    if (text.includes(';')) {
      const sent: (string | pg.QueryConfig)[] = ['begin'];
      for (const pair of settings) sent.push(prepared(settingText, pair));
      sent.push(prepared(text, values), 'commit');
      return corked(client, () => pipeline<R>(client, sent, settings.length + 1));
    }
    return new Promise((resolve, reject) => {
      let read: ReadWithSettings;
      try {
        read = new ReadWithSettings(settings, text, values);
      } catch (e) {
        reject(e);
        return;
      }
      client.query(
        read as unknown as pg.QueryConfig,
        (error: Error | null, result: pg.QueryResult) =>
          error ? reject(error) : resolve(toSqlResult<R>(result)),
      );
    });
  }

  /**
   * A pooled connection shared by reads sent alone (`ReadWithSettings`): each is its own
   * implicit transaction ended by its own Sync, so PostgreSQL isolates them — the settings
   * of one end before the next begins, and an error skips only to its own Sync. Reads of
   * several requests then go out on one connection without each checking it out of the
   * pool and back (which cost more than the driver's own work for the read), and its
   * backend answers them back to back. A connection leaves the pool while it has reads in
   * flight and goes back when the last is answered.
   */
  interface Reader {
    lease: Promise<Lease>;
    /** Once the pool has handed the connection over. */
    leased?: Lease;
    inFlight: number;
    /** Its connection failed: it takes no more reads and is destroyed once they are answered. */
    failed?: unknown;
  }
  const readers: Reader[] = [];

  /**
   * Shared reads sent in one turn of the event loop leave in one write per connection. The
   * first read a turn sends on a connection corks its socket until the turn's I/O callbacks
   * are done (setImmediate runs after them), so the reads of every request whose bytes
   * arrived in that turn go out together: one system call instead of one per read, and one
   * wake-up of the backend, which then answers them back to back (in bench:api this cut
   * the API's CPU per request by a fifth to a quarter and its backends' by a third). A read
   * waits at most for the rest of its turn's callbacks; its answer could not be read
   * before they had run anyway.
   */
  type Corkable = { cork(): void; uncork(): void };
  const held = new Set<Corkable>();
  let flushScheduled = false;
  const flushHeld = (): void => {
    flushScheduled = false;
    const streams = [...held];
    held.clear();
    for (const stream of streams) stream.uncork();
  };
  function holdWrites(client: pg.PoolClient): void {
    const stream = (client as unknown as { connection?: { stream?: Partial<Corkable> } }).connection
      ?.stream;
    if (!stream?.cork || !stream.uncork || held.has(stream as Corkable)) return;
    stream.cork();
    held.add(stream as Corkable);
    if (!flushScheduled) {
      flushScheduled = true;
      afterTurn(flushHeld);
    }
  }

  /**
   * Whether a read needing these prepared statements may follow the reads already sent on
   * the connection: each is parsed there, or not yet sent at all (then this read parses
   * it). A parse another read sent and PostgreSQL has not answered could still be skipped
   * by that read's failure, and this read would then fail for another's error.
   */
  const canFollow = (lease: Lease, names: readonly (string | undefined)[]): boolean => {
    const connection = (lease.client as unknown as { connection: WireConnection }).connection;
    return names.every(
      (name) =>
        name === undefined ||
        connection.parsedStatements[name] !== undefined ||
        connection.submittedNamedStatements[name] === undefined,
    );
  };

  /** The least busy reader this read may follow, or null: a new one is needed. */
  function pickReader(names: readonly (string | undefined)[]): Reader | null {
    let best: Reader | null = null;
    for (const r of readers) {
      if (
        r.failed === undefined &&
        r.inFlight < readsPerConnection &&
        (!best || r.inFlight < best.inFlight) &&
        // While anyone waits for a connection, the readers that have one take no more
        // reads: they drain, and the pool hands their connections to the waiters in turn.
        (r.leased === undefined || (pool.waitingCount === 0 && canFollow(r.leased, names)))
      )
        best = r;
    }
    return best;
  }

  function newReader(): Reader {
    const reader: Reader = { lease: checkout(), inFlight: 0 };
    reader.lease.then(
      (lease) => (reader.leased = lease),
      (e: unknown) => (reader.failed = e),
    );
    readers.push(reader);
    return reader;
  }

  function leave(reader: Reader): void {
    if (--reader.inFlight > 0) return;
    readers.splice(readers.indexOf(reader), 1);
    reader.leased?.release(reader.failed);
  }

  /** A read sent alone on a shared reader; retried on another when its connection failed. */
  async function readShared<R>(
    settings: readonly (readonly unknown[])[],
    text: string,
    values?: readonly unknown[],
  ): Promise<SqlResult<R>> {
    for (let attempt = 1; ;) {
      // Values are mapped here, so one pg cannot send fails before any connection is taken.
      const read = new ReadWithSettings(settings, text, values);
      const names = read.statementNames();
      const reader = pickReader(names) ?? newReader();
      reader.inFlight++;
      let lease: Lease;
      try {
        lease = reader.leased ?? (await reader.lease);
      } catch (e) {
        leave(reader);
        throw e;
      }
      // Checked again once the connection is in hand (it may have been on its way), and the
      // read sent at once after: no other read can send a parse in between.
      if (!canFollow(lease, names)) {
        leave(reader);
        continue;
      }
      try {
        holdWrites(lease.client);
        return await new Promise<SqlResult<R>>((resolve, reject) => {
          lease.client.query(
            read as unknown as pg.QueryConfig,
            (error: Error | null, result: pg.QueryResult) =>
              error ? reject(error) : resolve(toSqlResult<R>(result)),
          );
        });
      } catch (e) {
        if (!isConnectionError(e)) throw e;
        reader.failed ??= e;
        if (attempt++ > maxClients) throw e;
      } finally {
        leave(reader);
      }
    }
  }

  const db: Database = {
    // A single statement is its own transaction: one round trip. A connection that died
    // while idle fails it before it ran, so a read is retried on the next connection; a
    // write is not (it may have run), and runs in a transaction instead.
    async query<R>(text: string, values?: readonly unknown[]): Promise<SqlResult<R>> {
      if (!isReadOnlyText(text)) return db.transaction((tx) => tx.query<R>(text, values));
      for (let attempt = 1; ; attempt++) {
        const lease = await checkout();
        try {
          const r = toSqlResult<R>(await lease.client.query(prepared(text, values)));
          lease.release();
          return r;
        } catch (e) {
          lease.release(isConnectionError(e) ? e : undefined);
          if (attempt > maxClients || !isConnectionError(e)) throw fromPgError(e);
        }
      }
    },

    async transaction<T>(
      fn: (tx: SqlClient) => Promise<T>,
      options: TransactionOptions = {},
    ): Promise<T> {
      const settings = Object.entries(options.settings ?? {});
      // `open`: BEGIN has been sent for the real transaction; no retry after that.
      // Checked out up front, so an unreachable server fails even a fn that sends nothing;
      // with readsAlone, not before fn sends more than a plain read (reads share readers).
      const state: { lease: Promise<Lease> | null; open: boolean; ownConnection: boolean } = {
        lease: options.readsAlone ? null : Promise.resolve(await checkout()),
        open: false,
        ownConnection: false,
      };

      /**
       * Sends one statement of fn. Until the transaction is open, a statement whose pooled
       * connection died while idle has not run, or ran in a transaction that died with
       * it, so it is tried again on the next connection; once open, the failure is final.
       */
      async function send<R>(text: string, values?: readonly unknown[]): Promise<SqlResult<R>> {
        // Decided when fn sends it: once fn has sent anything but a plain read, every later
        // statement follows it on the transaction's own connection, in order.
        if (
          options.readsAlone &&
          !state.ownConnection &&
          isReadOnlyText(text) &&
          !text.includes(';')
        )
          return readShared<R>(settings, text, values);
        state.ownConnection = true;
        for (let attempt = 1; ; attempt++) {
          const current = (state.lease ??= checkout());
          let client: pg.PoolClient;
          try {
            ({ client } = await current);
          } catch (e) {
            if (state.lease === current) state.lease = null;
            throw e;
          }
          // Decided once the connection is in hand, and sent without awaiting, so statements
          // fn sends concurrently reach the connection in the order they were decided.
          const inTransaction = state.open;
          const opens = !inTransaction && !(options.readsAlone && isReadOnlyText(text));
          try {
            if (inTransaction) return await run<R>(client, text, values);
            if (!opens) return await readAlone<R>(client, settings, text, values);
            state.open = true;
            const statements: (string | pg.QueryConfig)[] = ['begin'];
            for (const pair of settings) statements.push(prepared(settingText, pair));
            statements.push(prepared(text, values));
            return await corked(client, () => pipeline<R>(client, statements, settings.length + 1));
          } catch (e) {
            if (inTransaction || attempt > maxClients || !isConnectionError(e)) throw e;
            if (opens) state.open = false;
            if (state.lease === current) {
              state.lease = null;
              (await current).release(e);
            }
          }
        }
      }

      const tx: SqlClient = {
        async query<R>(text: string, values?: readonly unknown[]) {
          try {
            return await send<R>(text, values);
          } catch (e) {
            // A statement's error is raised where its answer was read (the socket); as pg
            // does for a query it promised, point its stack at the code that sent it.
            if (e instanceof Error && !(e instanceof CoreError)) Error.captureStackTrace(e);
            throw fromPgError(e);
          }
        },
      };

      let result: T;
      try {
        result = await fn(tx);
      } catch (e) {
        if (state.lease) {
          const { client, release } = await state.lease;
          try {
            if (state.open) await client.query('rollback');
            release();
          } catch (rollbackError) {
            // The connection is unusable; the pool must not hand it out again.
            release(rollbackError);
          }
        }
        throw fromPgError(e);
      }
      if (!state.lease) return result;
      const { client, release } = await state.lease;
      try {
        if (state.open) await client.query('commit');
        release();
      } catch (e) {
        release(e);
        throw fromPgError(e);
      }
      return result;
    },

    async listen(channel, onNotification, onReconnect) {
      const listener = await listenOn(url, channel, onNotification, onReconnect);
      listeners.add(listener);
      return {
        close: async () => {
          listeners.delete(listener);
          await listener.close();
        },
      };
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.all([...listeners].map((l) => l.close()));
      await pool.end();
    },
  };
  return db;
}

/** One connection as the login role, for the migrator (session-level advisory lock). */
export async function openSession(url: string, connectTimeoutMs = 5000): Promise<SqlSession> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
  });
  // A session that dies while idle must not crash the process; the next query fails instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (e) {
    throw fromPgError(e);
  }
  return {
    async query<R>(text: string, values?: readonly unknown[]) {
      try {
        return toSqlResult<R>(await client.query(text, values as unknown[] | undefined));
      } catch (e) {
        throw fromPgError(e);
      }
    },
    end: () => client.end(),
  };
}

/** The database adapter pg-boss accepts as its `db` option. */
export interface PgBossDb {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  /** pg-boss's optional LISTEN/NOTIFY capability: wakes workers when a job is sent. */
  listen(
    channel: string,
    onNotification: (payload: string) => void,
    onReconnect: () => void,
  ): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

/**
 * A pg-boss `db` adapter on its own small pool. No SET ROLE: pg-boss owns and migrates its
 * own schema, so it runs as the login role (`selfdevop_queue`, QUEUE_DATABASE_URL). Errors pass through untouched.
 */
export function toPgBossDb(source: string, options: { max?: number } = {}): PgBossDb {
  const pool = new pg.Pool({
    connectionString: source,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5000,
  });
  pool.on('error', () => undefined);
  return {
    async executeSql(text, values) {
      // pg-boss sends several statements in one query (its supervisor does); pg answers
      // those with one result per statement, which pg-boss reads as a list.
      const r: pg.QueryResult | pg.QueryResult[] = await pool.query(text, values);
      return Array.isArray(r)
        ? (r.map((x) => ({ rows: x.rows })) as unknown as { rows: unknown[] })
        : { rows: r.rows };
    },
    listen: (channel, onNotification, onReconnect) =>
      listenOn(source, channel, onNotification, onReconnect),
    close: () => pool.end(),
  };
}

/**
 * A dedicated connection LISTENing on `channel`, re-subscribing after it drops (server
 * restart), with `onReconnect` after every subscribe so pg-boss fetches what it missed.
 */
async function listenOn(
  url: string,
  channel: string,
  onNotification: (payload: string) => void,
  onReconnect: () => void,
): Promise<{ close(): Promise<void> }> {
  let closed = false;
  let client: pg.Client | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const subscribe = async (): Promise<void> => {
    // keepAlive: a connection that silently died (a partition) errors instead of going quiet.
    const c = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    });
    c.on('notification', (n) => {
      if (n.channel === channel) onNotification(n.payload ?? '');
    });
    c.on('error', () => {
      // The connection died: polling carries on meanwhile; subscribe again shortly.
      if (client === c) client = null;
      c.end().catch(() => undefined);
      if (!closed) retry = setTimeout(() => void subscribe().catch(() => undefined), 1000);
    });
    await c.connect();
    await c.query(`listen ${quoteIdent(channel)}`);
    if (closed) {
      await c.end();
      return;
    }
    client = c;
    onReconnect();
  };
  await subscribe();
  return {
    close: async () => {
      closed = true;
      clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
