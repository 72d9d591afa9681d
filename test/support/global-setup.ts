import { requireService } from './services.ts';

/** Fails the whole run early, with the fix, when PostgreSQL is not there. */
export default async function setup(): Promise<void> {
  await requireService('postgres');
}
