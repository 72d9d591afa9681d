import { runApiSuite } from './api.case.ts';
import { startSelfhostApi } from '../support/api.ts';

runApiSuite('self-hosted, Node server, PostgreSQL', ({ signupMode }) =>
  startSelfhostApi({ signupMode }),
);
