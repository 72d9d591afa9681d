/**
 * The Store contract: the behaviour every Store (PostgreSQL, memory) shares, one case file
 * per aggregate under test/contracts/store/. Each implementation's test calls
 * runStoreContract; the builders are re-exported for other tests' data.
 */
import { describe, expect, it } from 'vitest';
import type { Store } from '../../core/ports.ts';
import { alertThresholdCases } from './store/alert-thresholds.case.ts';
import { apiKeyCases } from './store/api-keys.case.ts';
import { auditCases } from './store/audit.case.ts';
import { authGuardCases } from './store/auth-guards.case.ts';
import { store, useStore } from './store/context.ts';
import { dataServiceCases } from './store/data-services.case.ts';
import { deleteCases } from './store/deletes.case.ts';
import { deployJobCases } from './store/deploy-jobs.case.ts';
import { jobCases } from './store/jobs.case.ts';
import { domainLookupCases } from './store/domain-lookup.case.ts';
import { domainCases } from './store/domains.case.ts';
import { identityCases } from './store/identity.case.ts';
import { isolationCases } from './store/isolation.case.ts';
import { memberCases } from './store/members.case.ts';
import { nodeCheckCases } from './store/node-checks.case.ts';
import { orgCases } from './store/orgs.case.ts';
import { paginationCases } from './store/pagination.case.ts';
import { projectCases } from './store/projects.case.ts';
import { pushHookCases } from './store/push-hooks.case.ts';
import { gitPollCases } from './store/git-polls.case.ts';
import { releaseCases } from './store/releases.case.ts';
import { secretCases } from './store/secrets.case.ts';
import { transactionCases } from './store/transactions.case.ts';
import { webhookCases } from './store/webhooks.case.ts';

export * from './store/builders.ts';

export interface StoreFixture {
  /** A store for each test; closed after it. Tests use fresh ids, so the data may be shared. */
  make: () => Store | Promise<Store>;
}

/** The behaviour every Store (PostgreSQL, memory) shares. */
export function runStoreContract({ make }: StoreFixture): void {
  describe('Store contract', () => {
    useStore(make);

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    identityCases();
    authGuardCases();
    domainLookupCases();
    nodeCheckCases();
    orgCases();
    memberCases();
    apiKeyCases();
    projectCases();
    releaseCases();
    deployJobCases();
    secretCases();
    domainCases();
    webhookCases();
    pushHookCases();
    gitPollCases();
    dataServiceCases();
    jobCases();
    deleteCases();
    alertThresholdCases();
    auditCases();
    paginationCases();
    transactionCases();
    isolationCases();
  });
}
