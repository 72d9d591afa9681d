// Acceptance specs (features/): one profile per target, the self-hosted stack by default.
// Steps are TypeScript run by Node 24's type stripping: cucumber imports them as ESM.
const selfhost = {
  paths: ['features/**/*.feature'],
  import: ['features/support/**/*.ts', 'features/step_definitions/**/*.ts'],
  format: ['progress'],
  strict: true,
  failFast: false,
};

export default selfhost;
export { selfhost };
