// globalSetup of each vitest project (vitest.config.mjs): the project is named after the switch backend
// its tests run on ('threads' or 'inplace', through SPINDLE_BACKEND). Asks a child process, with the
// same Node, addon (SPINDLE_ADDON) and environment as the test workers, which backend that request
// really gets. When it is refused on this machine (an AddressSanitizer build, a Node build not on the
// allowlist), says so once here, and test/setup/backend.ts reports every test of the project as
// skipped with the reason.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The backend this project asks for, and why it is refused here ('' when it is not). */
    spindleBackend: { name: string; refused: string };
  }
}

const entry = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'index.js');

export default function setup(project: TestProject): void {
  const name = project.name;
  const r = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(entry)}).backend()))`], {
    encoding: 'utf8',
    env: { ...process.env, SPINDLE_BACKEND: name },
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`[${name}] cannot ask spindle for its backend (exit ${r.status ?? r.signal}):\n${r.stderr}`);
  const got = JSON.parse(r.stdout.trim()) as { name: string; reason: string };
  const refused = got.name === name ? '' : got.reason;
  if (refused) console.log(`[${name}] refused on this machine, every test of this project is reported as skipped: ${refused}`);
  project.provide('spindleBackend', { name, refused });
}
