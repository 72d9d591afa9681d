/**
 * Errors the core raises, each stating a fact (`NotFound`, `ReleaseAlreadyInFlight`). The
 * HTTP layer maps each `kind` to a status (invalid 400, unauthorized 401, forbidden 403,
 * not_found 404, conflict 409, rate_limited 429, unavailable 503) and puts `code` and
 * `message` in the JSON body.
 */
export type ErrorKind =
  | 'invalid'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'rate_limited'
  | 'unavailable';

export class CoreError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly details: unknown;

  constructor(kind: ErrorKind, code: string, message: string, details?: unknown) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
    this.code = code;
    this.details = details;
  }
}

export const isCoreError = (e: unknown): e is CoreError => e instanceof CoreError;

export class InvalidInput extends CoreError {
  constructor(message: string, details?: unknown) {
    super('invalid', 'invalid_input', message, details);
  }
}

export class Unauthenticated extends CoreError {
  constructor(message = 'missing or invalid credentials') {
    super('unauthorized', 'unauthenticated', message);
  }
}

export class InvalidCredentials extends CoreError {
  constructor() {
    super('unauthorized', 'invalid_credentials', 'email or password is incorrect');
  }
}

export class Forbidden extends CoreError {
  constructor(action: string, role: string) {
    super('forbidden', 'forbidden', `role ${role} may not ${action}`);
  }
}

export class NotFound extends CoreError {
  constructor(what: string, id: string) {
    super('not_found', `${what}_not_found`, `${what} ${id} not found`);
  }
}

export class AlreadyExists extends CoreError {
  constructor(what: string, name: string) {
    super('conflict', `${what}_exists`, `${what} ${name} already exists`);
  }
}

export class SignupClosed extends CoreError {
  constructor() {
    super(
      'forbidden',
      'signup_closed',
      'signup is closed on this installation; ask an owner or admin for an invite (POST /api/invites), then sign up with its token',
    );
  }
}

/**
 * A signup that cannot create this user. Worded the same whether or not the email has an
 * account, and never naming it: signup is not a way to learn who uses this installation.
 */
export class SignupRefused extends CoreError {
  constructor() {
    super(
      'conflict',
      'signup_refused',
      'signup could not be completed with this email; if you already have an account, log in',
    );
  }
}

export class TooManyAttempts extends CoreError {
  readonly retryAfterSeconds: number;
  constructor(
    retryAfterSeconds: number,
    what: 'login' | 'signup' | 'invite' | 'push' | 'domain change' = 'login',
  ) {
    super(
      'rate_limited',
      'too_many_attempts',
      `too many ${what} attempts; retry in ${retryAfterSeconds}s`,
      {
        retryAfterSeconds,
      },
    );
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class ReleaseAlreadyInFlight extends CoreError {
  constructor(releaseId: string) {
    super(
      'conflict',
      'release_in_flight',
      `release ${releaseId} of this service environment is still in flight`,
      { releaseId },
    );
  }
}

/**
 * A hostname another org has verified: only a verified domain holds a name. Says nothing
 * of who holds it; that the name is served is public already.
 */
export class HostnameTaken extends CoreError {
  constructor(hostname: string) {
    super(
      'conflict',
      'hostname_taken',
      `${hostname ? `hostname ${hostname}` : 'this hostname'} is already verified by another org; it can be claimed here once it is released there`,
    );
  }
}

export class IllegalTransition extends CoreError {
  constructor(what: string, from: string, to: string) {
    super('conflict', 'illegal_transition', `${what} cannot move from ${from} to ${to}`, {
      from,
      to,
    });
  }
}

export class Unavailable extends CoreError {
  /**
   * `refusedHandshake`: the connection was made and then closed during the TLS handshake,
   * which is how an engine refuses a client certificate: the engine is there (node checks
   * do not count it as a miss), selfdevop's credentials are not accepted.
   */
  constructor(what: string, reason: string, details?: { refusedHandshake: true }) {
    super('unavailable', `${what}_unavailable`, `${what} is unavailable: ${reason}`, details);
  }
}

/** The org must keep an owner: its last one can neither leave, be removed nor be demoted. */
export class LastOwner extends CoreError {
  constructor(userId: string) {
    super(
      'conflict',
      'last_owner',
      `user ${userId} is the org's last owner; transfer ownership to another member first (POST /api/members/{userId}/transfer-ownership)`,
      { userId },
    );
  }
}

/**
 * An invite that cannot be used: unknown, expired, used, revoked, or for another address.
 * Never names the invited address, so a token found in a log tells no one who was invited.
 */
export class InviteUnusable extends CoreError {
  constructor(reason: 'not_found' | 'expired' | 'used' | 'revoked' | 'email_mismatch') {
    const messages = {
      not_found: 'invite not found: the token is wrong, or the invite was deleted',
      expired: 'invite has expired; ask for a new one',
      used: 'invite has already been used',
      revoked: 'invite was revoked; ask for a new one',
      email_mismatch:
        'invite was sent to another email address; sign in with that address, or ask for an invite to yours',
    } as const;
    super(
      reason === 'not_found' ? 'not_found' : reason === 'email_mismatch' ? 'forbidden' : 'conflict',
      reason === 'not_found' ? 'invite_not_found' : `invite_${reason}`,
      messages[reason],
    );
  }
}
