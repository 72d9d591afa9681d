/**
 * How a Cognito user is a selfdevop user: the user id is derived from the Cognito subject,
 * so no mapping table is needed. Kept light: the tokens trigger's bundle imports only this.
 */
import type { ResolveUserId } from '../auth/cognito.ts';
import type { IdentityRepo } from '../../core/ports.ts';

/** The selfdevop user id of a Cognito user: `usr_` and the subject's hex digits. */
export function cognitoUserId(sub: string): string {
  return `usr_${sub.replace(/-/g, '').toLowerCase()}`;
}

/**
 * Maps a Cognito subject to a selfdevop user: the user made for that subject, or else the
 * user with the token's email (users who signed up before Cognito, or via an invite).
 */
export function fromIdentityRepo(
  identity: Pick<IdentityRepo, 'findUserById' | 'findUserByEmail'>,
): ResolveUserId {
  return async (sub, email) => {
    const bySub = await identity.findUserById(cognitoUserId(sub));
    if (bySub) return bySub.id;
    if (email) return (await identity.findUserByEmail(email))?.id ?? null;
    return null;
  };
}
