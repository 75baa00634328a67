#!/usr/bin/env node
// Builds the example consumer with cmake against the running Node's headers and spindle's include/.
//   node build.mjs [buildDir]     prints the path of the built .node on its last line
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const buildDir = path.resolve(process.argv[2] ?? path.join(here, 'build', `node-${process.versions.node}`));

function nodeIncludeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(path.join(process.env.npm_config_nodedir, 'include', 'node'));
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'include', 'node'));
  for (const dir of candidates) if (existsSync(path.join(dir, 'node_api.h'))) return dir;
  throw new Error(`node_api.h not found in ${candidates.join(' or ')}; set npm_config_nodedir`);
}

// spindle's headers: from the installed package when there is one, else this repository's include/.
function spindleIncludeDir() {
  try {
    const dir = path.join(path.dirname(require.resolve('spindle/package.json')), 'include');
    if (existsSync(path.join(dir, 'spindle.h'))) return dir;
  } catch {
    // not installed as a dependency: this example lives inside spindle's repository
  }
  return path.resolve(here, '..', '..', 'include');
}

function run(args) {
  const r = spawnSync('cmake', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run(['-S', here, '-B', buildDir, `-DNODE_INCLUDE_DIR=${nodeIncludeDir()}`, `-DSPINDLE_INCLUDE_DIR=${spindleIncludeDir()}`]);
run(['--build', buildDir, '--parallel']);
console.log(path.join(buildDir, 'native_consumer.node'));
