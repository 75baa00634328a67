// setupFiles of each vitest project (vitest.config.mjs), run in every test file's worker. Marks every
// test with its project's backend (task.meta.backend, which scripts/vitest-report.mjs reads from the
// JSON report to count per backend), and when that backend is refused on this machine (see
// backend-global.ts) skips every test with the reason as its note (task.meta.skipped for the JSON report).
import { type RunnerTestSuite, beforeAll, beforeEach, inject } from 'vitest';

const { name, refused } = inject('spindleBackend');

function mark(suite: RunnerTestSuite): void {
  for (const task of suite.tasks) {
    task.meta.backend = name;
    if (refused) task.meta.skipped = refused;  // also on tests skipped by it.runIf and the like
    if (task.type === 'suite') mark(task);
  }
}

declare module 'vitest' {
  interface TaskMeta {
    /** The switch backend of the project the test ran in. */
    backend?: string;
    /** Why the test was skipped, when its project's backend is refused here. */
    skipped?: string;
  }
}

// eslint-disable-next-line no-empty-pattern -- vitest 4 passes the suite second, after the fixtures
beforeAll(({}, suite) => mark(suite as RunnerTestSuite));

beforeEach((ctx) => {
  if (refused) ctx.skip(refused);
});
