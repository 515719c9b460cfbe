// `prisma generate` offline: every Prisma CLI command first looks for its native schema engine
// and tries to download it; generate does not use it, so any existing file satisfies the check.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const r = spawnSync(process.execPath, ['node_modules/prisma/build/index.js', 'generate'], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? self, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
});
if (r.status !== 0) {
  console.error('prisma generate failed (see above); the database client in prisma/generated is missing or stale.');
  process.exit(r.status ?? 1);
}
