/**
 * The MariaDB backup's row counter (`mariadbRowCounter`) in the data image's own mawk, on
 * dumps written by hand in mariadb-dump's layouts: the one-row-per-line layout of 10.11 it
 * counts exactly (values that read like rows or statements, routine bodies, names with
 * backticks, empty tables) and sizes in bytes, and the one-line layout of other versions it refuses with exit 1
 * and a reason, so such a backup fails rather than carry wrong counts. Real dumps are counted
 * in data-drill-server.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { mariadbRowCounter, parseCounts } from '../../core/data-services/backups.ts';
import {
  ensureDataImages,
  removeContainersByLabel,
  runPipedToEnd,
  testRun,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');

const layout1011 = [
  '-- MariaDB dump 10.19  Distrib 10.11.18-MariaDB, for debian-linux-gnu (x86_64)',
  'CREATE TABLE `odd``name, here` (',
  '  `id` int(11) NOT NULL,',
  '  `s` text DEFAULT NULL',
  ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;',
  'LOCK TABLES `odd``name, here` WRITE;',
  'INSERT INTO `odd``name, here` VALUES',
  "(1,'a),\\n(2,\\'x\\'),\\nINSERT INTO `kinds` VALUES\\n(3);'),",
  "(2,'),(\\\\'),",
  "(3,'DELIMITER ;;\\nDELIMITER ;\\n');",
  'INSERT INTO `odd``name, here` VALUES',
  // Multi-byte characters: the dump's size is counted in bytes.
  "(4,'\\r\\n);é€😀');",
  'UNLOCK TABLES;',
  'CREATE TABLE `nothing` (',
  '  `id` int(11) DEFAULT NULL',
  ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;',
  'LOCK TABLES `nothing` WRITE;',
  'UNLOCK TABLES;',
  'DELIMITER ;;',
  '/*!50003 CREATE*/ /*!50003 TRIGGER t AFTER INSERT ON nothing FOR EACH ROW',
  'INSERT INTO `audit` VALUES',
  '(NEW.id, 1),',
  '(NEW.id, 2) */;;',
  'CREATE TABLE `fake` (',
  'DELIMITER ;',
  '-- Dump completed on 2026-12-05 21:27:06',
  '',
].join('\n');

/** The one-line layout (MySQL's mysqldump, older MariaDB): several rows on a line. */
const oneLine = [
  'CREATE TABLE `t` (',
  '  `id` int(11) DEFAULT NULL',
  ') ENGINE=InnoDB;',
  'INSERT INTO `t` VALUES (1),(2),(3);',
  '',
].join('\n');

describe.skipIf(!ready)("the MariaDB row counter, in the data image's mawk", () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();

  beforeAll(() => ensureDataImages(), 900_000);
  afterAll(() => removeContainersByLabel(run.labels));

  const count = (dump: string) =>
    runPipedToEnd(
      runtime,
      {
        name: run.name('count'),
        image: 'selfdevop/mariadb:10.11',
        env: {},
        labels: run.labels,
        restartPolicy: 'no',
        noNetwork: true,
        entrypoint: ['bash', '-ec', mariadbRowCounter],
      },
      dump,
    );

  it('counts one row per line inside INSERTs, every created table, nothing in routine bodies', async () => {
    const r = await count(layout1011);
    expect(r.exitCode, r.err).toBe(0);
    expect(parseCounts(r.out).tables).toEqual({ 'odd`name, here': 4, nothing: 0 });
    // The dump's size for the manifest (a drill holds the restored bytes against it).
    expect(parseCounts(r.out).rawBytes).toBe(Buffer.byteLength(layout1011));
  }, 120_000);

  it('refuses a dump in another layout, saying so, rather than count it wrong', async () => {
    const r = await count(oneLine);
    expect(r.exitCode).toBe(1);
    expect(r.err).toContain('the dump is not one row per line (line 4)');
    expect(parseCounts(r.out).tables).toEqual({});
  }, 120_000);
});
