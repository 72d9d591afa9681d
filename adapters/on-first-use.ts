/**
 * A module loaded on the first call and shared by every call after it. Heavy clients (the
 * AWS SDKs, dockerode, ssh2) stay out of a cold start that never needs them, and a bundler
 * splits them into chunks of their own. A failed load is forgotten, so the next call retries.
 * @example const loadSdk = onFirstUse(() => import('@aws-sdk/client-sqs').then(exportsOf))
 */
export function onFirstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () =>
    (loading ??= load().catch((e: unknown) => {
      loading = undefined;
      throw e;
    }));
}

/**
 * The exports of a CommonJS package imported with `import()`: from a bundle (esbuild, split)
 * they arrive only as the default export, under Node as named exports too.
 */
export function exportsOf<T extends object>(m: T): Omit<T, 'default'> {
  return ((m as { default?: unknown }).default ?? m) as Omit<T, 'default'>;
}
