import { describe, expect, it } from 'vitest';
import { fromPino } from '../../adapters/logger/pino.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = fromPino({
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  return { logger, lines };
}

describe('pino logger', () => {
  it('writes a plain object as it is, with the base fields and the message', () => {
    const { logger, lines } = capture();
    logger.info(
      { requestId: 'r1', method: 'GET', path: '/api/projects', status: 200, ms: 1.5 },
      'request',
    );
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        service: 'selfdevop',
        requestId: 'r1',
        method: 'GET',
        path: '/api/projects',
        status: 200,
        ms: 1.5,
        msg: 'request',
      }),
    ]);
    expect(typeof lines[0]!.time).toBe('string');
  });

  it('redacts a secret at the top and one level down, whatever the level', () => {
    const { logger, lines } = capture();
    logger.debug({ token: 'sdo_abc' }, 'a');
    logger.info({ password: 'hunter2', ok: 1 }, 'b');
    logger.warn({ req: { authorization: 'Bearer x', path: '/p' } }, 'c');
    logger.error({ detail: { message: 'boom', value: 's3cret' } }, 'd');
    expect(lines.map((l) => [l.level, l.token ?? l.password ?? l.req ?? l.detail])).toEqual([
      ['debug', '[redacted]'],
      ['info', '[redacted]'],
      ['warn', { authorization: '[redacted]', path: '/p' }],
      ['error', { message: 'boom', value: '[redacted]' }],
    ]);
    expect(JSON.stringify(lines)).not.toMatch(/sdo_abc|hunter2|Bearer x|s3cret/);
  });

  it("keeps a child's bindings and level on plain and redacted lines alike", () => {
    const { logger, lines } = capture();
    const child = logger.child({ component: 'queue', secret: 'k' });
    child.info({ n: 1 }, 'plain');
    child.info({ key: 'sdo_x' }, 'redacted');
    expect(lines).toEqual([
      expect.objectContaining({ component: 'queue', secret: '[redacted]', n: 1, msg: 'plain' }),
      expect.objectContaining({ component: 'queue', secret: '[redacted]', key: '[redacted]' }),
    ]);
  });
});
