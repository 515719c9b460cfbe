// A real repository with two snapshots of one client whose file names are hostile on purpose
// (markup, quotes, a newline, bytes that are not UTF-8), for the snapshot browser's bus handlers
// and the console's snapshot pages. The second snapshot changes, adds and removes one file each.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LocalArchiver } from '../../daemon/archiver/local-archiver.js';
import { Repository } from '../../daemon/repository/repository.js';
import { LocalStorage } from '../../daemon/storage/local.js';
import { pseudoRandom } from './fixtures.js';

/** File names cannot hold a slash, so the markup is an element that would run script if it were parsed. */
export const MARKUP_NAME = '<img src=x onerror=alert(1)><script>.txt';
export const QUOTE_NAME = `it's "quoted".txt`;
export const NEWLINE_NAME = 'two\nlines.txt';
/** "bad-\xff-name.bin": not UTF-8. */
export const INVALID_UTF8_NAME = Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff]), Buffer.from('-name.bin')]);

export interface SnapshotFixture {
  repo: Repository;
  /** The backed-up directory, at the same absolute path in the snapshots. */
  data: string;
  first: string;
  second: string;
  /** Bytes of big.bin, for byte-for-byte download checks. */
  big: Buffer;
}

const fastKdf = { memoryKiB: 1024, iterations: 1, parallelism: 1 };

export async function twoSnapshots(dir: string, client = 'web1'): Promise<SnapshotFixture> {
  const data = path.join(dir, 'data');
  fs.mkdirSync(path.join(data, 'etc', 'nested'), { recursive: true });
  const big = pseudoRandom('snapshot-fixture', 300 * 1024);
  fs.writeFileSync(path.join(data, 'big.bin'), big);
  fs.writeFileSync(path.join(data, MARKUP_NAME), 'markup\n');
  fs.writeFileSync(path.join(data, QUOTE_NAME), 'quotes\n');
  fs.writeFileSync(path.join(data, NEWLINE_NAME), 'newline\n');
  fs.writeFileSync(Buffer.concat([Buffer.from(data + '/'), INVALID_UTF8_NAME]), 'latin1\n');
  fs.writeFileSync(path.join(data, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  fs.writeFileSync(path.join(data, 'etc', 'nested', 'removed.conf'), 'old\n');
  fs.symlinkSync('hosts', path.join(data, 'etc', 'link'));
  const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'correct horse battery staple', { kdf: fastKdf });
  const first = await new LocalArchiver(repo, { client, paths: [data] }).run();
  fs.writeFileSync(path.join(data, 'etc', 'hosts'), '127.0.0.1 localhost\n10.0.0.2 db1\n');
  fs.rmSync(path.join(data, 'etc', 'nested', 'removed.conf'));
  fs.writeFileSync(path.join(data, 'etc', 'added.conf'), 'new\n');
  const second = await new LocalArchiver(repo, { client, paths: [data] }).run();
  return { repo, data, first: first.id, second: second.id, big };
}
