/**
 * The MariaDB drill's restore over two connections (`mariadbRestoreSplitter` inside
 * `planDrill`), in the data image with its real server and clients, on dumps written by hand
 * in mariadb-dump 10.11's layout: rows shared out between the connections land exactly once,
 * a table exists before its rows arrive, a trigger is created only after every row of its
 * table (a restore that fired it would add rows), the dump's session settings and sandbox
 * mode bind both connections, and a dump without rows restores. A client that fails, on
 * either connection and at any point, fails the drill with its error, never a hang and never
 * a pass. Real dumps, every column type included, are restored exactly in
 * data-drill-server.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { parseCounts, parseDrillPhases, planDrill } from '../../core/data-services/backups.ts';
import { aDataService } from '../contracts/store/builders.ts';
import {
  ensureDataImages,
  removeContainersByLabel,
  runPipedToEnd,
  testRun,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');

const header = [
  '/*M!999999\\- enable the sandbox mode */ ',
  '/*!40101 SET NAMES utf8mb4 */;',
  "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
  '/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;',
];

/** One extended INSERT per slice of ids: `INSERT INTO` alone on its line, a row per line. */
const inserts = (table: string, from: number, to: number, per: number) => {
  const out: string[] = [];
  for (let i = from; i <= to; i += per) {
    const last = Math.min(i + per - 1, to);
    out.push(`INSERT INTO \`${table}\` VALUES`);
    for (let id = i; id <= last; id++) out.push(`(${id},'row ${id}')${id === last ? ';' : ','}`);
  }
  return out;
};

const table = (name: string, autoIncrement = false) => [
  `DROP TABLE IF EXISTS \`${name}\`;`,
  `CREATE TABLE \`${name}\` (`,
  `  \`id\` int(11) NOT NULL${autoIncrement ? ' AUTO_INCREMENT' : ''},`,
  '  `v` varchar(20) DEFAULT NULL,',
  '  PRIMARY KEY (`id`)',
  ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;',
];

/** Two tables of rows over many statements, a trigger on the first after its rows. */
const twoTables = [
  ...header,
  ...table('audit'),
  ...table('t1', true),
  'LOCK TABLES `t1` WRITE;',
  '/*!40000 ALTER TABLE `t1` DISABLE KEYS */;',
  ...inserts('t1', 1, 100, 100),
  // The second statement, the second connection's: id 0 stays 0 only under the header's
  // NO_AUTO_VALUE_ON_ZERO (else it takes id 101, and the next statement's 101 clashes).
  "INSERT INTO `t1` VALUES\n(0,'zero');",
  ...inserts('t1', 101, 200, 100),
  // A long statement for the second connection, then short ones for both: the first is
  // through its share long before the second, and would create the trigger meanwhile.
  ...inserts('t1', 201, 30200, 30000),
  ...inserts('t1', 30201, 30400, 10),
  '/*!40000 ALTER TABLE `t1` ENABLE KEYS */;',
  'UNLOCK TABLES;',
  '/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;',
  'DELIMITER ;;',
  '/*!50003 CREATE*/ /*!50003 TRIGGER t1_ai AFTER INSERT ON t1 FOR EACH ROW INSERT INTO audit VALUES',
  "(NEW.id, 'fired') */;;",
  'DELIMITER ;',
  '/*!50003 SET sql_mode              = @saved_sql_mode */ ;',
  ...table('t2'),
  'LOCK TABLES `t2` WRITE;',
  ...inserts('t2', 1, 3000, 75),
  'UNLOCK TABLES;',
  '/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;',
  '',
].join('\n');

describe.skipIf(!ready)("the MariaDB drill's restore over two connections", () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  const ds = aDataService('org_split', 'prj_split', 'nod_split', {
    id: 'dsv_split',
    name: 'split',
    engine: 'mariadb',
    version: '10.11',
  });

  beforeAll(() => ensureDataImages(), 900_000);
  afterAll(() => removeContainersByLabel(run.labels));

  let n = 0;
  const drill = (dump: string) => {
    const plan = planDrill(ds, 'drillpw1', `bak_split${n++}`);
    const spec = {
      ...plan,
      name: run.name(`drill${n}`),
      labels: { ...plan.labels, ...run.labels },
    };
    return runPipedToEnd(runtime, spec, dump, 120_000);
  };

  it('restores every row once, tables before their rows, the trigger after them', async () => {
    const r = await drill(twoTables);
    expect(r.exitCode, r.err).toBe(0);
    // audit empty: the trigger, created after t1's rows on one connection, fired for none
    // of the rows the other connection inserted. t1 holds row 0 (the session's sql_mode).
    expect(parseCounts(r.out).tables).toEqual({ audit: 0, t1: 30401, t2: 3000 });
    expect(parseDrillPhases(r.out).restored).toBeGreaterThan(0);
  }, 180_000);

  it('restores a dump without rows or settings (nothing at all for the second connection)', async () => {
    const r = await drill([...table('empty'), ''].join('\n'));
    expect(r.exitCode, r.err).toBe(0);
    expect(parseCounts(r.out).tables).toEqual({ empty: 0 });
  }, 180_000);

  for (const [connection, before] of [
    ['first', 0],
    ['second', 1],
  ] as const)
    it(`fails with the server's error when a statement on the ${connection} connection fails`, async () => {
      // Statements alternate: 1–5 to the first, 6–10 to the second, then (for the second)
      // 11–15 to the first; the next repeats id 5, and more rows follow it for both.
      const dump = [
        ...header,
        ...table('t'),
        ...inserts('t', 1, 5 * (2 + before), 5),
        "INSERT INTO `t` VALUES\n(5,'again');",
        ...inserts('t', 100, 2000, 10),
        '',
      ];
      const r = await drill(dump.join('\n'));
      expect(r.exitCode).not.toBe(0);
      expect(r.err).toContain("Duplicate entry '5'");
      expect(parseDrillPhases(r.out).restored).toBeUndefined();
    }, 180_000);

  it("keeps the dump's sandbox mode on both connections: no client command runs", async () => {
    // The second statement (the second connection's) carries `\!`, the client's shell
    // command; the header's sandbox line must bind that client too.
    const dump = [
      ...header,
      ...table('t'),
      ...inserts('t', 1, 5, 5),
      'INSERT INTO `t` VALUES',
      "(6,'six'),",
      '\\! touch /tmp/pwned',
      "(7,'seven');",
      '',
    ];
    const r = await drill(dump.join('\n'));
    expect(r.exitCode).not.toBe(0);
    expect(r.err).toMatch(/sandbox/i);
  }, 180_000);

  it("fails with the server's error when the first connection fails while the other waits on it", async () => {
    // The CREATE fails; the splitter is then waiting for the first connection before the rows.
    const dump = [
      ...header,
      'CREATE TABLE `t` (id int primary key, nope);',
      ...inserts('t', 1, 10, 5),
      '',
    ];
    const r = await drill(dump.join('\n'));
    expect(r.exitCode).not.toBe(0);
    expect(r.err).toContain('ERROR 1064');
    expect(r.err).toContain('the restore stopped: the client reading /tmp/a ended early');
    expect(parseDrillPhases(r.out).restored).toBeUndefined();
  }, 180_000);
});
