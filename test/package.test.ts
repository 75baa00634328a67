// The package as users load it: by name, through package.json "exports", from CommonJS and from ESM.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { root } from './helpers.js';

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-pkg-'));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(root, path.join(dir, 'node_modules', 'spindle'), 'dir');
  for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, name), source);
  return dir;
}

function run(dir: string, file: string) {
  return spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
}

describe('package entry points', () => {
  it('loads with require() from CommonJS', () => {
    const dir = project({
      'main.cjs': `
        const { spawn, sleep, current } = require('spindle');
        const f = spawn(() => { sleep(1); return current().name; }, { name: 'cjs' });
        f.result().then((v) => console.log('result', v));
      `,
    });
    const r = run(dir, 'main.cjs');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('result cjs');
    expect(r.status).toBe(0);
  });

  it('loads with import from ESM, sharing one runtime with require()', () => {
    const dir = project({
      'main.mjs': `
        import { createRequire } from 'node:module';
        import { spawn, current, Fiber } from 'spindle';
        import * as all from 'spindle';
        const cjs = createRequire(import.meta.url)('spindle');
        const f = spawn(() => cjs.current() === current() && current() instanceof cjs.Fiber);
        console.log('same', await f.result(), Fiber === cjs.Fiber, typeof all.scope);
      `,
    });
    const r = run(dir, 'main.mjs');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('same true true function');
    expect(r.status).toBe(0);
  });

  it('ships type declarations for the entry point', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    expect(readFileSync(path.join(root, pkg.exports['.'].types), 'utf8')).toContain("export * from './types/index.js'");
    expect(readFileSync(path.join(root, 'dist/types/fiber.d.ts'), 'utf8')).toContain('export declare function spawn<T>');
  });
});
