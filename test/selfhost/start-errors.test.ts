/**
 * The words start-up puts on a failure, from the errors and output the OS, PostgreSQL and
 * Caddy really produce (copied from runs that hit each cause).
 */
import { describe, expect, it } from 'vitest';
import { embeddedPostgresFailure } from '../../adapters/db/embedded-postgres.ts';
import { findCaddyBinary, listenFailureOf } from '../../adapters/edge/caddy-process.ts';
import { Unavailable } from '../../core/errors.ts';
import { messageOf, osReason } from '../../functions/selfhost/start-errors.ts';

const errno = (fields: Record<string, unknown>) => Object.assign(new Error('x'), fields);

describe('start-up failure causes', () => {
  it('says an OS error in words, under wrappers and aggregate errors too', () => {
    expect(
      osReason(errno({ code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port: 3000 })),
    ).toBe('port 3000 is already in use');
    expect(osReason(errno({ code: 'EACCES', syscall: 'listen', port: 80 }))).toBe(
      'binding port 80 needs root (ports below 1024 are privileged)',
    );
    expect(osReason(errno({ code: 'ENOTDIR', syscall: 'mkdir', path: '/srv/file/data' }))).toBe(
      'part of /srv/file/data is a file, not a directory',
    );
    const refused = errno({ code: 'ECONNREFUSED', address: '127.0.0.1', port: 5432 });
    const wrapped = new Unavailable('database', 'connect ECONNREFUSED 127.0.0.1:5432');
    wrapped.cause = refused;
    expect(osReason(wrapped)).toBe('nothing accepts connections at 127.0.0.1:5432');
    expect(osReason(new AggregateError([refused], ''))).toBe(
      'nothing accepts connections at 127.0.0.1:5432',
    );
    expect(osReason(errno({ code: '3D000' }))).toBe('the database does not exist');
    expect(osReason(new Error('something else'))).toBeNull();
  });

  it('never says undefined for a rejection without a reason', () => {
    expect(messageOf(undefined)).toBe('failed without saying why');
    expect(messageOf(new Error(''))).toBe('Error');
  });

  it("reads PostgreSQL's output for a taken port and a data directory in use", () => {
    const taken = embeddedPostgresFailure(
      'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use\nHINT:  Is another postmaster already running on port 54329? If not, wait a few seconds and retry.\nFATAL:  could not create any TCP/IP sockets',
      54329,
      '/srv/sdo/postgres',
      undefined,
    );
    expect([taken.reason, taken.message]).toEqual(['port-in-use', 'port 54329 is already in use']);
    const locked = embeddedPostgresFailure(
      'FATAL:  lock file "postmaster.pid" already exists\nHINT:  Is another postmaster (PID 4242) running in data directory "/srv/sdo/postgres"?',
      54329,
      '/srv/sdo/postgres',
      undefined,
    );
    expect(locked.reason).toBe('data-dir-in-use');
    expect(locked.message).toContain('(pid 4242)');
    const other = embeddedPostgresFailure(
      'LOG:  starting\nFATAL:  data directory "/srv/sdo/postgres" has invalid permissions',
      54329,
      '/srv/sdo/postgres',
      undefined,
    );
    expect([other.reason, other.message]).toEqual([
      'other',
      'FATAL:  data directory "/srv/sdo/postgres" has invalid permissions',
    ]);
  });

  it("reads Caddy's output for the address it could not bind", () => {
    const admin = listenFailureOf(
      'Error: loading initial config: loading new config: starting caddy administration endpoint: listen tcp 127.0.0.1:2019: bind: address already in use',
    );
    expect([admin?.address, admin?.message]).toEqual([
      '127.0.0.1:2019',
      'port 2019 is already in use',
    ]);
    const http = listenFailureOf(
      'Error: loading initial config: loading new config: http app module: start: listening on :80: listen tcp :80: bind: permission denied',
    );
    expect([http?.address, http?.message]).toEqual([
      ':80',
      'binding port 80 needs root (ports below 1024 are privileged)',
    ]);
    expect(listenFailureOf('{"level":"info","msg":"serving initial configuration"}')).toBeNull();
  });
});

describe('the caddy binary npm start runs', () => {
  it('is CADDY_BIN as a path or a name on PATH, else caddy on PATH, else none', async () => {
    const dirs = ['/nonexistent', '/bin'].join(':');
    expect(await findCaddyBinary('/bin/sh', '')).toBe('/bin/sh');
    expect(await findCaddyBinary('sh', dirs)).toBe('/bin/sh');
    expect(await findCaddyBinary('/nonexistent/caddy', dirs)).toBeNull();
    expect(await findCaddyBinary(undefined, '/nonexistent')).toBeNull();
  });
});
