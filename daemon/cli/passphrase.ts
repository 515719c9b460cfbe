// Passphrases come from a file, an environment variable or a terminal prompt, never from the
// command line (where `ps` and shell history would show them).
import { readFileSync } from 'node:fs';
import { HaulError } from '../../shared/errors.js';

export interface PassphraseSources {
  passwordFile?: string;
}

/** A secret from a file: everything but one trailing newline. */
export function readSecretFile(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaulError('PassphraseMissing', `cannot read the ${what} file ${file}: ${(err as Error).message}.`);
  }
  return text.replace(/\r?\n$/, '');
}

async function prompt(question: string): Promise<string> {
  const { stdin, stderr } = process;
  stderr.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let answer = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(answer);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new HaulError('PassphraseMissing', 'interrupted.'));
          return;
        }
        if (ch === '\u007f') answer = answer.slice(0, -1);
        else answer += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** The passphrase that opens (or, with `confirm`, creates) the repository. */
export async function repositoryPassphrase(sources: PassphraseSources, confirm = false): Promise<string> {
  const file = sources.passwordFile ?? process.env['HAUL_PASSWORD_FILE'];
  if (file) return readSecretFile(file, 'passphrase');
  const env = process.env['HAUL_PASSWORD'];
  if (env !== undefined && env !== '') return env;
  if (process.stdin.isTTY) {
    const first = await prompt('Repository passphrase: ');
    if (confirm && (await prompt('Repeat the passphrase: ')) !== first) {
      throw new HaulError('PassphraseMissing', 'the two passphrases differ; nothing was changed.');
    }
    return first;
  }
  throw new HaulError('PassphraseMissing', 'no passphrase given. Set HAUL_PASSWORD_FILE to a file holding it (or pass --password-file), or set HAUL_PASSWORD; on a terminal Haul asks for it.');
}

/** A second passphrase, for `key add` and `key passwd`. */
export async function newPassphrase(newPasswordFile: string | undefined): Promise<string> {
  const file = newPasswordFile ?? process.env['HAUL_NEW_PASSWORD_FILE'];
  if (file) return readSecretFile(file, 'new passphrase');
  const env = process.env['HAUL_NEW_PASSWORD'];
  if (env !== undefined && env !== '') return env;
  if (process.stdin.isTTY) {
    const first = await prompt('New passphrase: ');
    if ((await prompt('Repeat the new passphrase: ')) !== first) throw new HaulError('PassphraseMissing', 'the two passphrases differ; nothing was changed.');
    return first;
  }
  throw new HaulError('PassphraseMissing', 'no new passphrase given. Pass --new-password-file FILE or set HAUL_NEW_PASSWORD.');
}
