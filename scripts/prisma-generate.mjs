// `prisma generate` offline, once per provider. Prisma 7 compiles queries for one SQL dialect, so
// SQLite and PostgreSQL each get their own generated client from the same schema (only the
// provider line differs; the TypeScript types are identical). Every Prisma CLI command first looks
// for its native schema engine and tries to download it; generate does not use it, so any
// existing file satisfies the check.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const source = fs.readFileSync('prisma/schema.prisma', 'utf8');
fs.mkdirSync('prisma/generated', { recursive: true });

for (const provider of ['sqlite', 'postgresql']) {
  const schemaFile = `prisma/generated/schema.${provider}.prisma`;
  const text = source
    .replace(/provider\s*=\s*"sqlite"/, `provider = "${provider}"`)
    .replace(/output\s*=\s*"[^"]*"/, `output = "./${provider}"`);
  fs.writeFileSync(schemaFile, `// Generated from prisma/schema.prisma by scripts/prisma-generate.mjs; do not edit.\n${text}`);
  const r = spawnSync(process.execPath, ['node_modules/prisma/build/index.js', 'generate', '--schema', schemaFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? self, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
  });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    console.error(`prisma generate failed for ${provider} (see above); the database client in prisma/generated/${provider} is missing or stale.`);
    process.exit(r.status ?? 1);
  }
}
