import { cognitoUserId } from '../../adapters/modes/cloud-user.ts';
import { isCoreError } from '../../core/errors.ts';
import type { Clock, IdentityRepo, Logger } from '../../core/ports.ts';

/** What Cognito sends its pre token generation trigger (the fields read here). */
export interface PreTokenGenerationEvent {
  version: string;
  triggerSource: string;
  region: string;
  userPoolId: string;
  userName: string;
  request: { userAttributes: Record<string, string | undefined> };
  response: Record<string, unknown>;
}

export function isPreTokenGenerationEvent(e: unknown): e is PreTokenGenerationEvent {
  const o = e as Partial<PreTokenGenerationEvent> | null;
  return (
    typeof o?.triggerSource === 'string' &&
    o.triggerSource.startsWith('TokenGeneration_') &&
    typeof o.request?.userAttributes === 'object'
  );
}

/** Local passwords are off in cloud mode; this value is no bcrypt hash, so no password ever matches it. */
export const noLocalPassword = 'cognito';

/**
 * Cognito's pre token generation trigger: before every sign-in's tokens are issued, makes
 * sure the selfdevop user for the Cognito subject (`usr_<sub hex>`) exists, so an access
 * token always maps to a user. It fires for users an admin created too, which the post
 * confirmation trigger does not. The event goes back unchanged: no claim is altered.
 */
export function createPreTokenHandler(deps: {
  identity: Pick<IdentityRepo, 'findUserById' | 'findUserByEmail' | 'createUser'>;
  clock: Pick<Clock, 'now'>;
  logger: Logger;
}) {
  return async (event: unknown): Promise<PreTokenGenerationEvent> => {
    if (!isPreTokenGenerationEvent(event))
      throw new Error('the tokens function handles Cognito pre token generation events only');
    const { sub, email } = event.request.userAttributes;
    if (!sub) throw new Error(`Cognito user ${event.userName} has no sub attribute`);
    const id = cognitoUserId(sub);
    if (await deps.identity.findUserById(id)) return event;
    if (!email) throw new Error(`Cognito user ${event.userName} has no email attribute`);
    const holder = await deps.identity.findUserByEmail(email);
    if (holder) {
      // A user made before Cognito (or by another pool) holds the address: an operator links them.
      deps.logger.warn(
        { userId: holder.id, cognitoSub: sub },
        'email already belongs to another selfdevop user; not provisioned',
      );
      return event;
    }
    try {
      await deps.identity.createUser({
        id,
        email,
        passwordHash: noLocalPassword,
        createdAt: deps.clock.now().toISOString(),
      });
      deps.logger.info({ userId: id }, 'selfdevop user provisioned for a Cognito user');
    } catch (e) {
      // Two sign-ins at once: the other one created it.
      if (!(isCoreError(e) && e.kind === 'conflict')) throw e;
    }
    return event;
  };
}
