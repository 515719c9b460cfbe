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
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/daemon/**', '!**/daemon/database/**'], message: 'web/ talks to the daemon over the bus; it never imports daemon code (and so never holds a repository key). Only daemon/database is shared.' }] }],
    },
  },
);
