// cat(1) in a fiber: copies the files named on the command line to stdout, in order, with spindle/fs
// `File.read` and a spindle/stream writer over process.stdout. Each read and write suspends only this
// fiber; the writer waits for 'drain' when stdout is slower than the disk (backpressure, no pile-up).
//
// Run:   node examples/cat.mjs FILE...          (after `npm install`)
// Try:   node examples/cat.mjs README.md package.json | head
// A file that cannot be read is reported on stderr (like cat: "cat.mjs: nope.txt: ENOENT: no such file...");
// the others are still copied and the exit status is 1.
import { spawn } from '../dist/index.js';
import { open } from '../dist/fs/index.js';
import { writer } from '../dist/stream/index.js';

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: node examples/cat.mjs FILE...\n');
  process.exit(2);
}

const copy = spawn(() => {
  const out = writer(process.stdout);
  let failed = false;
  for (const name of files) {
    try {
      const file = open(name, 'r');
      try {
        for (;;) {
          const buf = Buffer.allocUnsafe(64 * 1024); // a fresh buffer: the stream may still hold the last one
          const n = file.read(buf);
          if (n === 0) break;
          out.write(buf.subarray(0, n));
        }
      } finally {
        file.close();
      }
    } catch (error) {
      if (error.code === 'EPIPE') return 0; // stdout closed (e.g. `| head`): stop quietly
      process.stderr.write(`cat.mjs: ${name}: ${error.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
});

process.exitCode = await copy.result();
