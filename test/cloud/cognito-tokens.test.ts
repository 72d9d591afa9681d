/**
 * Cognito's pre token generation trigger provisions the selfdevop user for a Cognito
 * subject, in a real PostgreSQL, so the access token that follows maps to a user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { cognitoUserId, fromIdentityRepo } from '../../adapters/modes/cloud-user.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import {
  createPreTokenHandler,
  isPreTokenGenerationEvent,
} from '../../functions/lambda/cognito-tokens-handler.ts';
import { createTestDatabase } from '../support/db.ts';

/** The event Cognito sends the trigger on a sign-in (version 1). */
function preTokenEvent(
  sub: string,
  email: string,
  triggerSource = 'TokenGeneration_Authentication',
) {
  return {
    version: '1',
    triggerSource,
    region: 'eu-west-1',
    userPoolId: 'eu-west-1_AbC123',
    userName: sub,
    callerContext: { awsSdkVersion: 'aws-sdk-unknown-unknown', clientId: 'abc123client' },
    request: {
      userAttributes: { sub, 'cognito:user_status': 'CONFIRMED', email_verified: 'true', email },
      groupConfiguration: { groupsToOverride: [], iamRolesToOverride: [], preferredRole: null },
    },
    response: { claimsOverrideDetails: null },
  };
}

let db: { url: string; drop: () => Promise<void> };
let pool: Database;
let store: PostgresStore;
const clock = new ManualClock('2026-03-01T10:00:00.000Z');
const logger = new MemoryLogger();

beforeAll(async () => {
  db = await createTestDatabase('cognito_tokens');
  await migrate(db.url);
  pool = fromDatabaseUrl(db.url, { max: 2 });
  store = new PostgresStore(pool);
});
afterAll(async () => {
  await store?.close();
  await pool?.close();
  await db?.drop();
});

describe('Cognito pre token generation trigger', () => {
  it('creates the user for a new subject once, and returns the event unchanged', async () => {
    const handler = createPreTokenHandler({ identity: store.identity, clock, logger });
    const sub = '7d1f3a52-9b0e-4c6d-8e2f-0a1b2c3d4e5f';
    const event = preTokenEvent(sub, 'New.User@Example.com');
    expect(isPreTokenGenerationEvent(event)).toBe(true);
    expect(await handler(event)).toBe(event);
    expect(await store.identity.findUserById(cognitoUserId(sub))).toEqual({
      id: 'usr_7d1f3a529b0e4c6d8e2f0a1b2c3d4e5f',
      email: 'new.user@example.com',
      createdAt: '2026-03-01T10:00:00.000Z',
    });
    await handler(preTokenEvent(sub, 'new.user@example.com', 'TokenGeneration_RefreshTokens'));
    await Promise.all([handler(event), handler(event)]);
    expect(await store.identity.countUsers()).toBe(1);
    expect(await fromIdentityRepo(store.identity)(sub)).toBe(cognitoUserId(sub));
  });

  it('leaves an address another user holds alone, and says so', async () => {
    await store.identity.createUser({
      id: 'usr_local1',
      email: 'taken@example.com',
      passwordHash: 'x',
      createdAt: clock.now().toISOString(),
    });
    const handler = createPreTokenHandler({ identity: store.identity, clock, logger });
    await handler(preTokenEvent('0b8e1c2d-0000-4000-8000-000000000001', 'taken@example.com'));
    expect(
      await store.identity.findUserById(cognitoUserId('0b8e1c2d-0000-4000-8000-000000000001')),
    ).toBeNull();
    expect(
      logger.entries.some(
        (e) => e.msg === 'email already belongs to another selfdevop user; not provisioned',
      ),
    ).toBe(true);
  });

  it('refuses other events and users without the attributes it needs', async () => {
    const handler = createPreTokenHandler({ identity: store.identity, clock, logger });
    await expect(handler({ Records: [] })).rejects.toThrow('pre token generation events only');
    const noEmail = preTokenEvent('0b8e1c2d-0000-4000-8000-000000000002', '');
    await expect(handler(noEmail)).rejects.toThrow('has no email attribute');
  });
});
