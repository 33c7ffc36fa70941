// ESLint flat config: typescript-eslint's recommended rules; formatting is Prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tap/', 'tap-snapshots/', '.runfleet/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // Only the CLI, benchmarks, scripts and CI helpers print for humans.
    files: ['src/cli/**', 'bench/**', 'scripts/**', 'bin/**', 'test/**', '.ci/**'],
    rules: { 'no-console': 'off' },
  },
);
