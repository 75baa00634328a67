#!/usr/bin/env node
// Builds the native addon from source against the running Node's own headers (no download).
// Skipped when a prebuild for this platform loads. Uses cmake-js when cmake is on PATH, else node-gyp.
//   SPINDLE_SANITIZE=address,undefined  build an instrumented copy into build-sanitize/ instead
//   SPINDLE_FORCE_BUILD=1               build even if a prebuild exists
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function nodeIncludeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(path.join(process.env.npm_config_nodedir, 'include', 'node'));
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'include', 'node'));
  for (const dir of candidates) if (existsSync(path.join(dir, 'v8.h'))) return dir;
  throw new Error(`spindle: Node's headers (v8.h) not found in ${candidates.join(' or ')}; ` +
    'set npm_config_nodedir to a Node installation directory that has include/node');
}

function run(cmd, args, env = process.env) {
  console.log(`> ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const sanitize = process.env.SPINDLE_SANITIZE ?? '';
if (!sanitize && !process.env.SPINDLE_FORCE_BUILD) {
  try {
    const found = require('node-gyp-build').path(root);
    if (found.includes(`${path.sep}prebuilds${path.sep}`)) {
      console.log(`spindle: using prebuild ${path.relative(root, found)}`);
      process.exit(0);
    }
  } catch {
    // nothing built yet: build below
  }
}

const include = nodeIncludeDir();
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
if (hasCmake) {
  const out = sanitize ? 'build-sanitize' : 'build';
  const args = [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--out', out, `--CDNODE_INCLUDE_DIR=${include}`];
  if (sanitize) args.push(`--CDSPINDLE_SANITIZE=${sanitize}`, '--debug');
  run(process.execPath, args);
} else {
  if (sanitize) throw new Error('spindle: sanitizer builds need cmake');
  const gyp = process.env.npm_config_node_gyp || require.resolve('node-gyp/bin/node-gyp.js');
  run(process.execPath, [gyp, 'rebuild', `--nodedir=${path.resolve(include, '..', '..')}`]);
}
