import { MemorySource } from '../../adapters/source/memory.ts';
import type { SourceArchive } from '../../core/ports.ts';
import { contractFiles, runSourceRepositoryContract } from '../contracts/source-repository.case.ts';

const sha = (c: string) => c.repeat(40);

runSourceRepositoryContract({
  make: async () => {
    const source = new MemorySource();
    let n = 0;
    const files = async (archive: SourceArchive) => {
      let text = '';
      for await (const chunk of archive.stream) text += new TextDecoder().decode(chunk);
      // MemorySource's stand-in for a tar: one JSON line `[path, content]` per file.
      const entries = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as [string, string]);
      return Object.fromEntries(entries);
    };
    return {
      source,
      files,
      async publicRepo() {
        const url = `git://memory/public-${++n}.git`;
        source.addRepository(url, {
          refs: { main: sha('a'), feature: sha('b'), v1: sha('a') },
          commits: { [sha('a')]: contractFiles, [sha('b')]: { ...contractFiles, 'new.txt': 'x' } },
        });
        return { url, main: sha('a'), feature: sha('b') };
      },
      async privateRepo() {
        const url = `https://memory/private-${++n}.git`;
        source.addRepository(url, {
          refs: { main: sha('c') },
          commits: { [sha('c')]: contractFiles },
          token: 'the-token',
        });
        return { url, token: 'the-token', main: sha('c') };
      },
      async unreachableUrl() {
        return 'git://memory/nowhere.git';
      },
    };
  },
});
