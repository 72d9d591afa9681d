/**
 * Kept so imports of `./stack.ts` keep working: the security harness is one file,
 * `./support/stack.ts`.
 */
export * from './support/stack.ts';
