import { MemoryRouteCatalog } from '../../adapters/edge/route-catalog-memory.ts';
import { runRouteCatalogContract } from '../contracts/route-catalog.case.ts';

runRouteCatalogContract({
  make: async () => {
    const catalog = new MemoryRouteCatalog();
    return { catalog, seed: async (f) => void catalog.add(f) };
  },
});
