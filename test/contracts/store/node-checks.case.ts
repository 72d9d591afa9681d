/** Store contract: what node checks write on a node, and the orgs they start from. */
import { describe, expect, it } from 'vitest';
import { aNode, at } from './builders.ts';
import { store, a, b } from './context.ts';

export function nodeCheckCases(): void {
  describe('node checks', () => {
    it('starts a node unknown, records a check only while its reachability is the one read', async () => {
      const n = aNode(a.orgId);
      await store.withOrg(a.orgId, (r) => r.nodes.insert(n));
      const seen = {
        reachability: 'reachable' as const,
        reachabilitySince: at(1),
        lastSeenAt: at(1),
        missedChecks: 0,
      };
      expect(await store.withOrg(a.orgId, (r) => r.nodes.recordCheck(n.id, 'unknown', seen))).toBe(
        true,
      );
      // A second checker read `unknown` too: it must not move the node again.
      const lost = { ...seen, reachability: 'lost' as const, reachabilitySince: at(2) };
      expect(await store.withOrg(a.orgId, (r) => r.nodes.recordCheck(n.id, 'unknown', lost))).toBe(
        false,
      );
      expect(await store.withOrg(a.orgId, (r) => r.nodes.get(n.id))).toMatchObject(seen);
      expect(
        await store.withOrg(a.orgId, (r) => r.nodes.recordCheck(n.id, 'reachable', lost)),
      ).toBe(true);
      expect(await store.withOrg(a.orgId, (r) => r.nodes.get(n.id))).toMatchObject(lost);
    });

    it("never writes another org's node, and lists the orgs that have nodes", async () => {
      const n = aNode(a.orgId);
      await store.withOrg(a.orgId, (r) => r.nodes.insert(n));
      const patch = {
        reachability: 'lost' as const,
        reachabilitySince: at(1),
        lastSeenAt: null,
        missedChecks: 3,
      };
      expect(await store.withOrg(b.orgId, (r) => r.nodes.recordCheck(n.id, 'unknown', patch))).toBe(
        false,
      );
      expect(await store.withOrg(a.orgId, (r) => r.nodes.get(n.id))).toMatchObject({
        reachability: 'unknown',
        missedChecks: 0,
      });
      const orgs = await store.nodeLookup.orgsWithNodes();
      expect(orgs).toContain(a.orgId);
      expect(orgs).not.toContain(b.orgId);
    });
  });
}
