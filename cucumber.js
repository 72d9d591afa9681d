// Acceptance specs (features/): one profile per target, the self-hosted stack by default.
// Steps are TypeScript run by Node 24's type stripping: cucumber imports them as ESM.
// No `paths`: cucumber's default (features/**/*.feature) applies, and a path given on the
// command line (npm run test:acceptance -- features/03-deploy.feature) runs just that file.
const selfhost = {
  import: ['features/support/**/*.ts', 'features/step_definitions/**/*.ts'],
  format: ['progress'],
  strict: true,
  failFast: false,
};

export default selfhost;
export { selfhost };
