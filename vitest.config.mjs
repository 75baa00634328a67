import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file in its own process: fibers own carrier threads and process-level hooks.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Load the built package with Node itself, as users do (not through Vite's transform).
    server: { deps: { external: [/\/dist\//] } },
  },
});
