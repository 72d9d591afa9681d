import type { Context } from 'hono';
import type { z } from 'zod';
import { CoreError, isCoreError, type ErrorKind } from '../../core/errors.ts';
import type { Logger } from '../../core/ports.ts';

export const statusOf: Record<ErrorKind, 400 | 401 | 403 | 404 | 409 | 429 | 503> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  unavailable: 503,
};

/** Turns zod issues into one sentence that names each offending field. */
export function describeZodError(error: z.ZodError, where: string): CoreError {
  const issues = error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') {
      const base = i.path.join('.');
      return {
        field: i.keys.map((k) => (base ? `${base}.${k}` : k)).join(', '),
        message: `unknown field${i.keys.length > 1 ? 's' : ''}`,
      };
    }
    const field = i.path.length ? i.path.join('.') : where;
    const message = i.code === 'invalid_type' && i.input === undefined ? 'is required' : i.message;
    return { field, message };
  });
  const message = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
  return new CoreError('invalid', 'invalid_input', message, { issues });
}

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** The one place an exception becomes a response; an unknown error is a logged 500. */
export function respondWithError(c: Context, err: unknown, logger: Logger) {
  if (isCoreError(err)) {
    const status = statusOf[err.kind];
    if (status === 503) logger.warn({ code: err.code, err: err.message }, 'dependency unavailable');
    const retryAfter = (err.details as { retryAfterSeconds?: number } | undefined)
      ?.retryAfterSeconds;
    if (retryAfter) c.header('Retry-After', String(retryAfter));
    return c.json(errorBody(err.code, err.message, err.details), status);
  }
  logger.error(
    { err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) },
    'unhandled error',
  );
  return c.json(
    errorBody(
      'internal_error',
      'internal error; the request id in X-Request-Id helps find it in the logs',
    ),
    500,
  );
}
