// spindle/fibers and spindle/fibers/future as users load them, and the migration README recommends:
// require('fibers') / require('fibers/future') answered by the shim package in compat/fibers.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { root } from './helpers.js';

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'spindle-fibers-pkg-'));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(root, path.join(dir, 'node_modules', 'spindle'), 'dir');
  for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, name), source);
  return dir;
}

function run(dir: string, file: string) {
  return spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
}

// Old fibers code, unchanged: CommonJS.
const legacyCjs = `
  var Fiber = require('fibers');
  var Future = require('fibers/future');
  var inc = Fiber(function (start) {
    var total = start;
    while (true) total += Fiber.yield(total);
  });
  var seen = [inc.run(1), inc.run(2), inc.run(3)];
  var later = function (v) { var f = new Future; setTimeout(function () { f.return(v); }, 1); return f; };
  Fiber(function () {
    seen.push(later('waited').wait(), typeof Fiber.current.run);
    console.log(seen.join(' '));
  }).run();
`;

describe('spindle/fibers entry points', () => {
  it('require(): the Fiber and Future functions themselves, sharing the runtime with spindle', () => {
    const dir = project({
      'main.cjs': `
        const Fiber = require('spindle/fibers');
        const Future = require('spindle/fibers/future');
        const { spawn, current, Coroutine } = require('spindle');
        const f = Fiber(() => [Fiber.current === f, current() instanceof Coroutine, Fiber.yield(1)]);
        f.run();
        console.log(typeof Fiber, typeof Fiber.yield, typeof Future, typeof Future.wait, typeof Function.prototype.future);
        console.log(JSON.stringify(f.run('x')));
        spawn(() => Future.task(() => 'task in a spawned fiber').wait()).result().then(console.log);
      `,
    });
    const r = run(dir, 'main.cjs');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('function function function function function\n[true,true,"x"]\ntask in a spawned fiber\n');
  });

  it('import: default exports, the same functions as require() gives', () => {
    const dir = project({
      'main.mjs': `
        import { createRequire } from 'node:module';
        import Fiber from 'spindle/fibers';
        import Future from 'spindle/fibers/future';
        import { sleep } from 'spindle';
        const require = createRequire(import.meta.url);
        console.log(Fiber === require('spindle/fibers'), Future === require('spindle/fibers/future'));
        let done;
        const finished = new Promise((resolve) => (done = resolve));
        const f = Fiber(() => { sleep(1); done(); return 'slept'; });
        console.log(f.run(), f.started);
        const v = await Future.task(() => 'from task').promise();
        await finished;
        console.log(v, f.started);
      `,
    });
    const r = run(dir, 'main.mjs');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('true true\nundefined true\nfrom task false\n');
  });

  it('ships type declarations for both entries', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    for (const [entry, file] of [['./fibers', 'index'], ['./fibers/future', 'future']]) {
      const e = pkg.exports[entry];
      expect(e).toEqual({ types: `./dist/fibers/${file}.d.ts`, import: `./dist/fibers/${file}.js`, require: `./dist/cjs/fibers/${file}.js` });
      expect(readFileSync(path.join(root, e.types), 'utf8')).toContain(`export { default } from '../types/fibers/${file}.js'`);
    }
    expect(readFileSync(path.join(root, 'dist/types/fibers/index.d.ts'), 'utf8')).toContain('export interface FiberConstructor');
    expect(pkg.files).toContain('compat');
  });
});

describe('migrating from fibers: the compat/fibers shim, as README shows', () => {
  it('old code runs unchanged with node_modules/fibers being the shim (what `npm install ./vendor/fibers` makes)', () => {
    const dir = project({ 'legacy.cjs': legacyCjs });
    cpSync(path.join(root, 'compat', 'fibers'), path.join(dir, 'vendor', 'fibers'), { recursive: true });
    symlinkSync(path.join('..', 'vendor', 'fibers'), path.join(dir, 'node_modules', 'fibers'), 'dir');
    const r = run(dir, 'legacy.cjs');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1 3 6 waited function\n');

    writeFileSync(
      path.join(dir, 'legacy.mjs'),
      `import Fiber from 'fibers';
       import Future from 'fibers/future';
       import FutureJs from 'fibers/future.js';
       import { createRequire } from 'node:module';
       const require = createRequire(import.meta.url);
       console.log(Fiber === require('spindle/fibers'), Future === FutureJs, Future === require('fibers/future'));`,
    );
    const m = run(dir, 'legacy.mjs');
    expect(m.stderr).toBe('');
    expect(m.stdout).toBe('true true true\n');
  });

  it('npm install of the shim really links it (offline: file dependencies only)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spindle-fibers-npm-'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'legacy-app', version: '1.0.0', private: true, dependencies: { spindle: `file:${root}` } }));
    writeFileSync(path.join(dir, 'legacy.cjs'), legacyCjs);
    cpSync(path.join(root, 'compat', 'fibers'), path.join(dir, 'vendor', 'fibers'), { recursive: true });
    const npm = spawnSync('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', './vendor/fibers'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(npm.status).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).dependencies.fibers).toBe('file:vendor/fibers');
    const r = run(dir, 'legacy.cjs');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1 3 6 waited function\n');
  });

  it('the override "fibers": "$fibers" gives a dependency that wants fibers@^4 the shim too', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spindle-fibers-npm-'));
    cpSync(path.join(root, 'compat', 'fibers'), path.join(dir, 'vendor', 'fibers'), { recursive: true });
    mkdirSync(path.join(dir, 'libs', 'oldlib'), { recursive: true });
    writeFileSync(path.join(dir, 'libs', 'oldlib', 'package.json'), JSON.stringify({ name: 'oldlib', version: '1.0.0', dependencies: { fibers: '^4.0.0' } }));
    writeFileSync(path.join(dir, 'libs', 'oldlib', 'index.js'), legacyCjs);
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({
        name: 'legacy-app',
        version: '1.0.0',
        private: true,
        dependencies: { spindle: `file:${root}`, fibers: 'file:vendor/fibers', oldlib: 'file:libs/oldlib' },
        overrides: { fibers: '$fibers' },
      }),
    );
    writeFileSync(path.join(dir, 'main.cjs'), "require('oldlib');");
    // Offline: without the override npm would have to fetch fibers@^4 from the registry, and fail.
    const npm = spawnSync('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(npm.status).toBe(0);
    const r = run(dir, 'main.cjs');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1 3 6 waited function\n');
  });
});
