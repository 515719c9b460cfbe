import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

// The architecture's direction is web -> shared <- daemon. A web module that imports the
// daemon (and so the repository and its keys) is refused here, not discovered in review.
export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'web/dist/**', 'probe/dist/**', 'prisma/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['shared/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/daemon/**', '**/web/**'], message: 'shared/ depends on nothing in daemon/ or web/.' }] }],
    },
  },
  {
    files: ['web/**'],
    rules: {
      // The one exception is daemon/database (users, sessions, tokens, audit trail): it never
      // touches the repository or its keys.
      // A regex, not a glob group: gitignore-style globs cannot re-include daemon/database once
      // daemon/** has excluded its parent folder.
      'no-restricted-imports': ['error', { patterns: [{ regex: '(^|/)daemon/(?!database/)', message: 'web/ talks to the daemon over the bus; it never imports daemon code (and so never holds a repository key). Only daemon/database is shared.' }] }],
    },
  },
  {
    // The browser app gets everything over HTTP and socket.io; of the server side it may share
    // only plain code in shared/ (no database, no Node APIs in the bundle).
    files: ['web/app/**'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/daemon/**', '**/web/server/**'], message: 'the browser app talks to the server over HTTP and socket.io; it imports only shared/ code.' }] }],
    },
  },
  {
    // The daemon never depends on the console. The one exception is `haul web`, the command that
    // launches it: the CLI starts every Haul process.
    files: ['daemon/**'],
    ignores: ['daemon/cli/commands/web.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/web/**'], message: 'daemon/ does not depend on web/; only `haul web` (daemon/cli/commands/web.ts) starts the console.' }] }],
    },
  },
);
