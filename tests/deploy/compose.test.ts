// docker-compose.yml must stay valid. Validation needs only the compose CLI (no docker daemon):
// Debian's `docker-compose` 1.29 or the `docker compose` plugin, whichever is installed.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../helpers/cli.js';

function composeCommand(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  return undefined;
}

const compose = composeCommand();
const secrets = { POSTGRES_PASSWORD: 'pg-secret', MINIO_ROOT_PASSWORD: 'minio-secret', HAUL_PASSPHRASE: 'repo-secret' };

describe.skipIf(!compose)(`docker-compose.yml${compose ? '' : ' (skipped: no docker compose or docker-compose here)'}`, () => {
  const run = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(compose![0]!, [...compose!.slice(1), '-f', path.join(projectRoot, 'docker-compose.yml'), ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env } });

  it('is valid with its secrets set, and lists every service including the optional profiles', () => {
    const r = run(secrets, 'config', '--services');
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['demo-client', 'haul-daemon', 'haul-daemon-2', 'haul-init', 'haul-web', 'minio', 'minio-bucket', 'postgres']);
  });

  it('refuses to start without the secrets, naming the missing one', () => {
    const r = run({ MINIO_ROOT_PASSWORD: 'x', HAUL_PASSPHRASE: 'y' }, 'config', '-q');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('set POSTGRES_PASSWORD');
  });

  it('gives the web console no repository passphrase', () => {
    const r = run(secrets, 'config');
    const web = r.stdout.split(/\n {2}haul-web:\n/)[1]!.split(/\n {2}[a-z0-9-]+:\n/)[0]!;
    expect(web).not.toContain('HAUL_PASSWORD');
    expect(web).not.toContain('repo-secret');
  });
});
