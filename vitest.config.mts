import { defineConfig } from 'vitest/config';

// Unit (engine, no VS Code), webview (jsdom: `// @vitest-environment jsdom` per file) and integration
// (the real Python worker through the engine) tests. The e2e suite in a real VS Code has its own config.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/webview/**/*.test.ts', 'test/integration/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
