import { MemoryControlDatabase } from '../../adapters/control-database/memory.ts';
import { runControlDatabaseContract } from '../contracts/control-database.case.ts';

let n = 0;
let db: MemoryControlDatabase;
runControlDatabaseContract({
  make: () => (db = new MemoryControlDatabase({ 'public.orgs': 2, 'public.users': 3 })),
  expectTable: 'public.orgs',
  newName: () => `restored_${++n}`,
  drop: async (name) => {
    db.databases.delete(name);
  },
});
