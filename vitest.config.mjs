import { defineConfig } from 'vitest/config';

// The whole suite runs once per switch backend (native/same_thread.h): each project sets SPINDLE_BACKEND
// for its workers and the child processes they start, and is named after it, so test names show the
// backend. Where 'inplace' is refused (an ASan build, a Node build not on the allowlist), that project's
// tests are reported as skipped with the reason (test/setup/). The projects run one after the other
// (sequence.groupOrder): the same file under both would otherwise share build directories
// (test/native-api.test.ts builds examples/native-consumer).
const BACKENDS = ['threads', 'inplace'];

export default defineConfig({
  test: {
    // Each file in its own process: fibers own carrier threads and process-level hooks.
    pool: 'forks',
    // One file at a time on 2 CPUs (vitest's default: CPUs - 1). Two workers took the suite under both
    // backends from 190 s to 150 s here, but on a loaded machine the benchmark smoke test's timed TCP
    // runs then measured nothing at all.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Load the built package with Node itself, as users do (not through Vite's transform).
    server: { deps: { external: [/\/dist\//] } },
    projects: BACKENDS.map((name, order) => ({
      extends: true,
      test: {
        name,
        include: ['test/**/*.test.ts'],
        env: { SPINDLE_BACKEND: name },
        globalSetup: ['test/setup/backend-global.ts'],
        setupFiles: ['test/setup/backend.ts'],
        sequence: { groupOrder: order },
      },
    })),
  },
});
