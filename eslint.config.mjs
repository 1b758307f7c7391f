// `npm run lint` (also a step of `npm test`): typescript-eslint's type-checked rules over the
// daemon, the benchmarks and the tests. What tsc's strict mode cannot see is what matters
// here: a promise nobody awaits (a lost publish or an unhandled rejection in a daemon that
// runs unattended) and `any` leaking past the zod-parsed edges.
import tseslint from 'typescript-eslint';

// node:test's `test`/`describe` return promises that the runner itself awaits.
const nodeTestCalls = {
  from: 'package',
  package: 'node:test',
  name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'training/**', 'build/**', 'scratch/**'] },
  {
    files: ['src/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [nodeTestCalls] }],
      // Interface methods are declared async so that every implementation returns a
      // promise, including the ones with nothing to await.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
