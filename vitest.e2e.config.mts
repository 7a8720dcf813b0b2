import { defineConfig } from 'vitest/config';

// End-to-end tests in a real VS Code (code-server + Debian Chromium driven by playwright-core).
// One file at a time: each starts its own code-server and browser.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
});
