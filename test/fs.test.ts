// spindle/fs: every function on real files in a temp dir, compared with node:fs on the same files.
import * as nfs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FiberInterruptedError, NotInFiberError, TimeoutError, fibers, sleep, spawn, yieldNow } from '../dist/index.js';
import * as fs from '../dist/fs/index.js';

import { inFiber, thrown } from './helpers.js';

let dir: string;
const at = (...parts: string[]): string => path.join(dir, ...parts);

beforeAll(() => {
  dir = nfs.mkdtempSync(path.join(tmpdir(), 'spindle-fs-'));
});
afterAll(() => {
  nfs.rmSync(dir, { recursive: true, force: true });
});

/** The error a Node sync call throws. */
function nodeError(fn: () => unknown): NodeJS.ErrnoException {
  return thrown(fn) as NodeJS.ErrnoException;
}

/** The fields Node's fs errors carry. */
function shape(error: unknown): Record<string, unknown> {
  const e = error as NodeJS.ErrnoException & { dest?: string };
  return { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, dest: e.dest };
}

const STAT_FIELDS = ['dev', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'blksize', 'ino', 'size', 'blocks', 'atimeMs', 'mtimeMs', 'ctimeMs', 'birthtimeMs'] as const;

/** `times`: false for files other processes touch meanwhile (/dev/null). */
function expectSameStats(ours: nfs.Stats, theirs: nfs.Stats, times = true): void {
  expect(ours).toBeInstanceOf(nfs.Stats);
  // Before the dates are read: Node 22+ computes them lazily and caches them as own properties.
  expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
  for (const f of STAT_FIELDS) if (times || !f.endsWith('timeMs')) expect([f, ours[f]]).toEqual([f, theirs[f]]);
  for (const d of ['atime', 'mtime', 'ctime', 'birthtime'] as const) {
    expect(ours[d]).toBeInstanceOf(Date);
    if (times) expect(ours[d].getTime()).toBe(theirs[d].getTime());
  }
  for (const m of ['isFile', 'isDirectory', 'isSymbolicLink', 'isFIFO', 'isSocket', 'isBlockDevice', 'isCharacterDevice'] as const) {
    expect([m, ours[m]()]).toEqual([m, theirs[m]()]);
  }
}

describe('spindle/fs: whole-file helpers', () => {
  it('writeFile, readFile and appendFile round-trip strings and bytes', async () => {
    const p = at('round.txt');
    const out = await inFiber(() => {
      fs.writeFile(p, 'héllo');
      const a = fs.readFile(p, 'utf8');
      fs.appendFile(p, Buffer.from(' world'));
      fs.appendFile(p, new Uint8Array([0x21]));
      const b = fs.readFile(p);
      const c = fs.readFile(p, { encoding: 'latin1' });
      fs.writeFile(p, 'aGk=', 'base64');
      const d = fs.readFile(p, 'utf8');
      return { a, b, c, d };
    });
    expect(out.a).toBe('héllo');
    expect(Buffer.isBuffer(out.b)).toBe(true);
    expect(out.b.toString()).toBe('héllo world!');
    expect(out.c).toBe(Buffer.from('héllo world!').toString('latin1'));
    expect(out.d).toBe('hi');
    expect(nfs.readFileSync(p, 'utf8')).toBe('hi');
  });

  it('readFile of an empty file, a large file and a file of unknown size (/proc)', async () => {
    nfs.writeFileSync(at('empty'), '');
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    nfs.writeFileSync(at('big'), big);
    const out = await inFiber(() => ({ empty: fs.readFile(at('empty')), big: fs.readFile(at('big')), proc: fs.readFile('/proc/self/cmdline') }));
    expect(out.empty.length).toBe(0);
    expect(out.big.equals(big)).toBe(true);
    expect(out.proc.equals(nfs.readFileSync('/proc/self/cmdline'))).toBe(true);
  });

  it('writeFile takes mode and flag; appendFile creates the file', async () => {
    const p = at('modes.txt');
    await inFiber(() => {
      fs.writeFile(p, 'x', { mode: 0o600 });
      fs.appendFile(at('appended.txt'), 'a');
      fs.appendFile(at('appended.txt'), 'b');
    });
    expect(nfs.statSync(p).mode & 0o777).toBe(0o600);
    expect(nfs.readFileSync(at('appended.txt'), 'utf8')).toBe('ab');
    const error = await inFiber(() => thrown(() => fs.writeFile(p, 'y', { flag: 'wx' })));
    expect(shape(error)).toEqual(shape(nodeError(() => nfs.writeFileSync(p, 'y', { flag: 'wx' }))));
    expect(nfs.readFileSync(p, 'utf8')).toBe('x');
  });

  it('readFile of a directory fails like Node (EISDIR on read)', async () => {
    const error = await inFiber(() => thrown(() => fs.readFile(dir)));
    const theirs = nodeError(() => nfs.readFileSync(dir));
    expect((error as NodeJS.ErrnoException).code).toBe(theirs.code);
    expect((error as NodeJS.ErrnoException).errno).toBe(theirs.errno);
    expect((error as NodeJS.ErrnoException).syscall).toBe(theirs.syscall);
  });
});

describe('spindle/fs: File', () => {
  it('read: defaults, offset/length/position, the object form, 0 at the end', async () => {
    const p = at('read.txt');
    nfs.writeFileSync(p, '0123456789');
    const out = await inFiber(() => {
      const f = fs.open(p);
      const b = Buffer.alloc(4);
      const r: unknown[] = [];
      r.push(f.read(b), b.toString()); // 0123, position advances
      r.push(f.read(b, 1, 2), b.toString()); // '45' into b[1..3]
      r.push(f.read(b, 0, 4, 0), b.toString()); // positional: does not move
      r.push(f.read(b, { length: 3, position: 7 }), b.toString('utf8', 0, 3));
      r.push(f.read(b, { offset: 2 }), b.toString()); // from the current position (6): '67'
      r.push(f.read(Buffer.alloc(10), 0, 10, 100)); // past the end
      r.push(f.read(Buffer.alloc(10))); // at the end now? position 8: '89'
      r.push(f.read(Buffer.alloc(10))); // end
      r.push(f.read(Buffer.alloc(0))); // nothing asked
      const u16 = new Uint16Array(2);
      r.push(f.read(u16, 0, 4, 0), Buffer.from(u16.buffer).toString());
      f.close();
      return r;
    });
    expect(out).toEqual([4, '0123', 2, '0453', 4, '0123', 3, '789', 2, '7867', 0, 2, 0, 0, 4, '0123']);
  });

  it('write: strings and bytes, positional and appending, returns the bytes written', async () => {
    const p = at('write.txt');
    const out = await inFiber(() => {
      const f = fs.open(p, 'w+');
      const r: unknown[] = [f.write('hello'), f.write(Buffer.from(' world')), f.write('J', 0), f.write('é', { position: 11 })];
      r.push(f.stat().size);
      f.close();
      const a = fs.open(p, 'a');
      r.push(a.write('!', 0)); // O_APPEND: the end, whatever the position (Linux)
      a.close();
      return r;
    });
    expect(out).toEqual([5, 6, 1, 2, 13, 1]);
    expect(nfs.readFileSync(p, 'utf8')).toBe('Jello worldé!');
  });

  it('readAll reads from the current position; stat, truncate, sync', async () => {
    const p = at('all.txt');
    nfs.writeFileSync(p, 'abcdefgh');
    const out = await inFiber(() => {
      const f = fs.open(p, 'r+');
      const whole = f.readAll().toString();
      f.read(Buffer.alloc(1), 0, 1, 0); // positional: position stays at the end
      const none = f.readAll().length;
      const s = f.stat();
      f.truncate(3);
      const after = f.stat().size;
      f.truncate(5);
      f.sync();
      const zeros = fs.readFile(p);
      f.truncate();
      const empty = f.stat().size;
      f.close();
      return { whole, none, size: s.size, isFile: s.isFile(), after, zeros: [...zeros], empty };
    });
    expect(out).toEqual({ whole: 'abcdefgh', none: 0, size: 8, isFile: true, after: 3, zeros: [97, 98, 99, 0, 0], empty: 0 });
  });

  it('File.stat matches fstat from node:fs', async () => {
    const p = at('fstat.txt');
    nfs.writeFileSync(p, 'x'.repeat(5000));
    const ours = await inFiber(() => {
      const f = fs.open(p);
      try {
        return f.stat();
      } finally {
        f.close();
      }
    });
    expectSameStats(ours, nfs.statSync(p));
  });

  it('close: fd turns -1, later calls throw EBADF, closing again does nothing, Symbol.dispose closes', async () => {
    const p = at('close.txt');
    nfs.writeFileSync(p, 'data');
    const out = await inFiber(() => {
      const f = fs.open(p);
      const fd = f.fd;
      f.close();
      f.close();
      const errors = [
        thrown(() => f.read(Buffer.alloc(1))),
        thrown(() => f.write('x')),
        thrown(() => f.readAll()),
        thrown(() => f.stat()),
        thrown(() => f.truncate(0)),
        thrown(() => f.sync()),
      ] as NodeJS.ErrnoException[];
      const g = fs.open(p);
      const gfd = g.fd;
      g[Symbol.dispose]();
      return { fd, after: f.fd, closed: f.closed, errors: errors.map((e) => [e.code, e.syscall, e.message]), gfd, gAfter: g.fd };
    });
    expect(out.fd).toBeGreaterThan(2);
    expect(out.after).toBe(-1);
    expect(out.closed).toBe(true);
    expect(out.errors).toEqual([
      ['EBADF', 'read', 'file closed'],
      ['EBADF', 'write', 'file closed'],
      ['EBADF', 'read', 'file closed'],
      ['EBADF', 'fstat', 'file closed'],
      ['EBADF', 'ftruncate', 'file closed'],
      ['EBADF', 'fsync', 'file closed'],
    ]);
    expect(out.gAfter).toBe(-1);
    // The descriptors are really closed.
    expect(nfs.existsSync(`/proc/self/fd/${out.fd}`) && nfs.readlinkSync(`/proc/self/fd/${out.fd}`) === p).toBe(false);
  });

  it('close waits for another fiber\'s read in flight on the same file', async () => {
    const p = at('shared-close.bin');
    nfs.writeFileSync(p, Buffer.alloc(2 << 20, 1));
    const order: string[] = [];
    await inFiber(() => {
      const f = fs.open(p);
      const reader = spawn(() => {
        const n = f.read(Buffer.alloc(2 << 20)); // over 1 MiB: through the threadpool, even when cached
        order.push(`read ${n}`);
      });
      yieldNow(); // the reader starts its read and parks
      expect(fibers().find((x) => x.id === reader.id)?.waitingOn).toMatch(/^fs\.read\(fd \d+\)$/);
      f.close();
      order.push('closed');
      reader.join();
    });
    expect(order).toEqual([`read ${2 << 20}`, 'closed']);
  });

  it('open flags and mode: wx fails on an existing file, numeric flags, created mode', async () => {
    const p = at('flags.txt');
    const out = await inFiber(() => {
      fs.open(p, 'wx', 0o640).close();
      const exists = thrown(() => fs.open(p, 'wx'));
      const f = fs.open(p, nfs.constants.O_RDWR);
      f.write('ok');
      f.close();
      fs.open(at('flags2.txt'), 'w', '600').close();
      return { exists };
    });
    expect(shape(out.exists)).toEqual(shape(nodeError(() => nfs.openSync(p, 'wx'))));
    expect(nfs.statSync(p).mode & 0o777).toBe(0o640);
    expect(nfs.statSync(at('flags2.txt')).mode & 0o777).toBe(0o600);
    expect(nfs.readFileSync(p, 'utf8')).toBe('ok');
  });
});

describe('spindle/fs: metadata and directories (parity with node:fs)', () => {
  beforeAll(async () => {
    nfs.mkdirSync(at('tree', 'sub', 'deep'), { recursive: true });
    nfs.writeFileSync(at('tree', 'b.txt'), 'bb');
    nfs.writeFileSync(at('tree', 'a.txt'), 'a');
    nfs.writeFileSync(at('tree', 'sub', 'c'), 'c');
    nfs.symlinkSync(at('tree', 'a.txt'), at('tree', 'link'));
    nfs.symlinkSync(at('tree', 'sub'), at('tree', 'dirlink'));
    // Settle access times so the comparisons below see the same values: relatime updates atime on an
    // access (following a symbolic link is one) while atime <= mtime, so access once after the clock
    // (coarse, a few ms) has moved past the creation time.
    await new Promise((resolve) => setTimeout(resolve, 30));
    for (const p of ['a.txt', 'b.txt', 'sub', 'link', 'dirlink']) {
      nfs.statSync(at('tree', p));
      nfs.readdirSync(at('tree'));
      if (p.endsWith('link')) nfs.readlinkSync(at('tree', p));
    }
  });

  it('stat and lstat match node:fs for a file, a directory and symbolic links', async () => {
    const targets = [at('tree', 'a.txt'), at('tree', 'sub'), at('tree', 'link'), at('tree', 'dirlink'), '/dev/null'];
    const ours = await inFiber(() => targets.map((p) => [fs.stat(p), fs.lstat(p)]));
    targets.forEach((p, i) => {
      expectSameStats(ours[i][0], nfs.statSync(p), p !== '/dev/null');
      expectSameStats(ours[i][1], nfs.lstatSync(p), p !== '/dev/null');
    });
    expect(ours[2][1].isSymbolicLink()).toBe(true);
    expect(ours[4][0].isCharacterDevice()).toBe(true);
  });

  it('readdir returns the names in node:fs order; withFileTypes gives Dirents', async () => {
    const ours = await inFiber(() => ({ names: fs.readdir(at('tree')), dirents: fs.readdir(at('tree'), { withFileTypes: true }) }));
    expect(ours.names).toEqual(nfs.readdirSync(at('tree')));
    const theirs = nfs.readdirSync(at('tree'), { withFileTypes: true });
    expect(ours.dirents.map((d) => d.name)).toEqual(theirs.map((d) => d.name));
    for (const [i, d] of ours.dirents.entries()) {
      expect(d).toBeInstanceOf(nfs.Dirent);
      expect(d).toEqual(theirs[i]);
      expect([d.isFile(), d.isDirectory(), d.isSymbolicLink()]).toEqual([theirs[i].isFile(), theirs[i].isDirectory(), theirs[i].isSymbolicLink()]);
    }
  });

  it('mkdir: plain, EEXIST, recursive returns the first directory created (as node:fs)', async () => {
    const ours = await inFiber(() => ({
      plain: fs.mkdir(at('m1')),
      again: thrown(() => fs.mkdir(at('m1'))),
      missingParent: thrown(() => fs.mkdir(at('m2', 'x'))),
      deep: fs.mkdir(at('m3', 'a', 'b'), { recursive: true }),
      existing: fs.mkdir(at('m3', 'a'), { recursive: true }),
      onFile: thrown(() => fs.mkdir(at('tree', 'a.txt'), { recursive: true })),
      underFile: thrown(() => fs.mkdir(at('tree', 'a.txt', 'x'), { recursive: true })),
      mode: fs.mkdir(at('m4'), { mode: 0o700 }),
    }));
    expect(ours.plain).toBeUndefined();
    expect(nfs.statSync(at('m1')).isDirectory()).toBe(true);
    expect(shape(ours.again)).toEqual(shape(nodeError(() => nfs.mkdirSync(at('m1')))));
    expect(shape(ours.missingParent)).toEqual(shape(nodeError(() => nfs.mkdirSync(at('m2', 'x')))));
    expect(ours.deep).toBe(at('m3'));
    expect(nfs.mkdirSync(at('m5', 'a', 'b'), { recursive: true })).toBe(at('m5'));
    expect(ours.existing).toBeUndefined();
    expect(nfs.mkdirSync(at('m5', 'a'), { recursive: true })).toBeUndefined();
    expect(shape(ours.onFile)).toEqual(shape(nodeError(() => nfs.mkdirSync(at('tree', 'a.txt'), { recursive: true }))));
    expect(shape(ours.underFile)).toEqual(shape(nodeError(() => nfs.mkdirSync(at('tree', 'a.txt', 'x'), { recursive: true }))));
    expect(nfs.statSync(at('m4')).mode & 0o777).toBe(0o700);
  });

  it('rm: a file, a directory (ERR_FS_EISDIR without recursive), a tree, force, a symlink (not its target)', async () => {
    nfs.mkdirSync(at('rmtree', 'x', 'y'), { recursive: true });
    nfs.writeFileSync(at('rmtree', 'f'), 'f');
    nfs.writeFileSync(at('rmtree', 'x', 'y', 'g'), 'g');
    nfs.writeFileSync(at('rmfile'), 'f');
    nfs.mkdirSync(at('rmdir-target'));
    nfs.writeFileSync(at('rmdir-target', 'keep'), 'k');
    nfs.symlinkSync(at('rmdir-target'), at('rmlink'));
    const ours = await inFiber(() => {
      fs.rm(at('rmfile'));
      const isDir = thrown(() => fs.rm(at('rmtree')));
      fs.rm(at('rmtree'), { recursive: true });
      fs.rm(at('missing'), { force: true });
      const missing = thrown(() => fs.rm(at('missing')));
      fs.rm(at('rmlink'), { recursive: true });
      return { isDir, missing };
    });
    expect(nfs.existsSync(at('rmfile'))).toBe(false);
    expect(nfs.existsSync(at('rmtree'))).toBe(false);
    expect(nfs.existsSync(at('rmlink'))).toBe(false);
    expect(nfs.readFileSync(at('rmdir-target', 'keep'), 'utf8')).toBe('k');
    const theirs = thrown(() => nfs.rmSync(dir)) as NodeJS.ErrnoException;
    const isDir = ours.isDir as NodeJS.ErrnoException;
    expect([isDir.code, isDir.errno, isDir.syscall, isDir.name]).toEqual([theirs.code, theirs.errno, theirs.syscall, theirs.name]);
    expect(isDir.message).toBe(`Path is a directory: rm returned EISDIR (is a directory) ${at('rmtree')}`);
    expect(shape(ours.missing)).toEqual(shape(nodeError(() => nfs.rmSync(at('missing')))));
  });

  it('rmdir, rename, unlink, copyFile, access and realpath', async () => {
    nfs.writeFileSync(at('src.txt'), 'source');
    nfs.mkdirSync(at('emptydir'));
    const ours = await inFiber(() => {
      fs.copyFile(at('src.txt'), at('copy.txt'));
      const excl = thrown(() => fs.copyFile(at('src.txt'), at('tree', 'b.txt'), nfs.constants.COPYFILE_EXCL));
      fs.rename(at('copy.txt'), at('moved.txt'));
      fs.access(at('moved.txt'));
      fs.access(at('moved.txt'), nfs.constants.R_OK | nfs.constants.W_OK);
      const noAccess = thrown(() => fs.access(at('copy.txt')));
      fs.unlink(at('moved.txt'));
      fs.rmdir(at('emptydir'));
      const notEmpty = thrown(() => fs.rmdir(at('tree')));
      return { excl, noAccess, notEmpty, real: fs.realpath(at('tree', 'dirlink', '..', 'link')), dot: fs.realpath('.') };
    });
    expect(nfs.existsSync(at('moved.txt'))).toBe(false);
    expect(nfs.existsSync(at('emptydir'))).toBe(false);
    expect(shape(ours.excl)).toEqual(shape(nodeError(() => nfs.copyFileSync(at('src.txt'), at('tree', 'b.txt'), nfs.constants.COPYFILE_EXCL))));
    expect(shape(ours.noAccess)).toEqual(shape(nodeError(() => nfs.accessSync(at('copy.txt')))));
    expect(shape(ours.notEmpty)).toEqual(shape(nodeError(() => nfs.rmdirSync(at('tree')))));
    expect(ours.real).toBe(nfs.realpathSync.native(at('tree', 'dirlink', '..', 'link')));
    expect(ours.dot).toBe(process.cwd());
  });

  it('accepts Buffer and file: URL paths', async () => {
    nfs.writeFileSync(at('url.txt'), 'u');
    const out = await inFiber(() => [fs.readFile(new URL(`file://${at('url.txt')}`), 'utf8'), fs.stat(Buffer.from(at('url.txt'))).size]);
    expect(out).toEqual(['u', 1]);
  });
});

describe('spindle/fs: errors are node:fs errors', () => {
  it.each<[string, () => unknown, () => unknown]>([
    ['open', () => fs.open('/nonexistent/x'), () => nfs.openSync('/nonexistent/x', 'r')],
    ['readFile', () => fs.readFile('/nonexistent/x'), () => nfs.readFileSync('/nonexistent/x')],
    ['writeFile', () => fs.writeFile('/nonexistent/x', 'a'), () => nfs.writeFileSync('/nonexistent/x', 'a')],
    ['stat', () => fs.stat('/nonexistent/x'), () => nfs.statSync('/nonexistent/x')],
    ['lstat', () => fs.lstat('/nonexistent/x'), () => nfs.lstatSync('/nonexistent/x')],
    ['readdir', () => fs.readdir('/nonexistent/x'), () => nfs.readdirSync('/nonexistent/x')],
    ['readdir of a file', () => fs.readdir('/etc/hostname'), () => nfs.readdirSync('/etc/hostname')],
    ['mkdir', () => fs.mkdir('/nonexistent/x'), () => nfs.mkdirSync('/nonexistent/x')],
    ['rename', () => fs.rename('/nonexistent/x', '/nonexistent/y'), () => nfs.renameSync('/nonexistent/x', '/nonexistent/y')],
    ['unlink', () => fs.unlink('/nonexistent/x'), () => nfs.unlinkSync('/nonexistent/x')],
    ['rmdir', () => fs.rmdir('/nonexistent/x'), () => nfs.rmdirSync('/nonexistent/x')],
    ['copyFile', () => fs.copyFile('/nonexistent/x', '/tmp/y'), () => nfs.copyFileSync('/nonexistent/x', '/tmp/y')],
    ['access', () => fs.access('/nonexistent/x'), () => nfs.accessSync('/nonexistent/x')],
    ['realpath', () => fs.realpath('/nonexistent/x'), () => nfs.realpathSync.native('/nonexistent/x')],
    ['unlink of a directory', () => fs.unlink('/tmp'), () => nfs.unlinkSync('/tmp')],
  ])('%s: message, code, errno, syscall, path, dest', async (_name, ours, theirs) => {
    const error = await inFiber(() => thrown(ours));
    expect(error).toBeInstanceOf(Error);
    expect(shape(error)).toEqual(shape(nodeError(theirs)));
    expect((error as Error).stack).toContain('fs.test.ts'); // thrown from the caller's frame
  });

  it('read and write errors carry the syscall (EBADF on a write-only or read-only descriptor)', async () => {
    const p = at('ro.txt');
    nfs.writeFileSync(p, 'x');
    const out = await inFiber(() => {
      const ro = fs.open(p, 'r');
      const wo = fs.open(p, 'a');
      try {
        return { write: thrown(() => ro.write('y')), read: thrown(() => wo.read(Buffer.alloc(1))) };
      } finally {
        ro.close();
        wo.close();
      }
    });
    const fd = nfs.openSync(p, 'r');
    const theirs = nodeError(() => nfs.writeSync(fd, 'y'));
    nfs.closeSync(fd);
    expect(shape(out.write)).toEqual(shape(theirs));
    expect((out.read as NodeJS.ErrnoException).code).toBe('EBADF');
    expect((out.read as NodeJS.ErrnoException).syscall).toBe('read');
    expect(nfs.readFileSync(p, 'utf8')).toBe('x');
  });
});

describe('spindle/fs: bad arguments throw before any IO', () => {
  const p = (): string => at('args.txt');
  beforeAll(() => nfs.writeFileSync(at('args.txt'), '0123456789'));

  it.each<[string, () => unknown, typeof TypeError | typeof RangeError, string]>([
    ['readFile(123)', () => fs.readFile(123 as never), TypeError, '"path"'],
    ['readFile(null)', () => fs.readFile(null as never), TypeError, '"path"'],
    ['stat({})', () => fs.stat({} as never), TypeError, '"path"'],
    ['open with a null byte', () => fs.open('/tmp/a\u0000b'), TypeError, "'path'"],
    ['rename(…, 5)', () => fs.rename('/tmp/a', 5 as never), TypeError, '"newPath"'],
    ['copyFile(1, …)', () => fs.copyFile(1 as never, '/tmp/b'), TypeError, '"src"'],
    ['open with bad flags', () => fs.open('/tmp/x', 'q'), TypeError, "'flags'"],
    ['open with a bad mode', () => fs.open('/tmp/x', 'r', -1), RangeError, '"mode"'],
    ['writeFile(…, 42)', () => fs.writeFile('/tmp/x', 42 as never), TypeError, '"data"'],
    ['readFile with a bad encoding', () => fs.readFile('/tmp/x', 'nope' as never), TypeError, "'encoding'"],
    ['a negative timeout', () => fs.stat('/tmp', { timeout: -1 }), RangeError, '"options.timeout"'],
    ['a string timeout', () => fs.stat('/tmp', { timeout: '5' as never }), TypeError, '"options.timeout"'],
    ['access with a bad mode', () => fs.access('/tmp', 9), RangeError, '"mode"'],
    ['mkdir with a non-boolean recursive', () => fs.mkdir('/tmp/x', { recursive: 'yes' as never }), TypeError, '"options.recursive"'],
  ])('%s', async (_name, call, type, names) => {
    const error = await inFiber(() => thrown(call));
    expect(error).toBeInstanceOf(type);
    expect((error as Error).message).toContain(names);
    expect(nfs.existsSync('/tmp/x')).toBe(false);
  });

  it('File.read/write: buffer type, negative length, a buffer too small, bad offset and position', async () => {
    const errors = await inFiber(() => {
      const f = fs.open(p(), 'r+');
      try {
        return [
          thrown(() => f.read('abc' as never)),
          thrown(() => f.read(Buffer.alloc(4), 0, -1)),
          thrown(() => f.read(Buffer.alloc(4), 0, 5)),
          thrown(() => f.read(Buffer.alloc(4), 2, 3)),
          thrown(() => f.read(Buffer.alloc(4), 5)),
          thrown(() => f.read(Buffer.alloc(4), 1.5)),
          thrown(() => f.read(Buffer.alloc(4), 0, 4, -2)),
          thrown(() => f.read(Buffer.alloc(4), { length: 8 })),
          thrown(() => f.write(5 as never)),
          thrown(() => f.write('x', -3)),
          thrown(() => f.truncate(-1)),
        ] as Error[];
      } finally {
        f.close();
      }
    });
    const summary = errors.map((e) => [e.constructor.name, /"(\w+)"/.exec(e.message)?.[1]]);
    expect(summary).toEqual([
      ['TypeError', 'buffer'],
      ['RangeError', 'length'],
      ['RangeError', 'length'],
      ['RangeError', 'length'],
      ['RangeError', 'offset'],
      ['RangeError', 'offset'],
      ['RangeError', 'position'],
      ['RangeError', 'length'],
      ['TypeError', 'data'],
      ['RangeError', 'position'],
      ['RangeError', 'len'],
    ]);
    expect(errors[2].message).toContain('the buffer holds 4 bytes');
    expect(nfs.readFileSync(p(), 'utf8')).toBe('0123456789');
  });

  it('outside fibers every call throws NotInFiberError pointing at node:fs/promises', () => {
    const calls: Array<() => unknown> = [
      () => fs.open(p()),
      () => fs.readFile(p()),
      () => fs.writeFile(at('never.txt'), 'x'),
      () => fs.appendFile(at('never.txt'), 'x'),
      () => fs.stat(p()),
      () => fs.lstat(p()),
      () => fs.readdir(dir),
      () => fs.mkdir(at('never')),
      () => fs.rm(p()),
      () => fs.rmdir(dir),
      () => fs.rename(p(), at('never.txt')),
      () => fs.unlink(p()),
      () => fs.copyFile(p(), at('never.txt')),
      () => fs.access(p()),
      () => fs.realpath(p()),
    ];
    for (const call of calls) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(NotInFiberError);
      expect((error as Error).message).toContain('node:fs/promises');
    }
    expect(nfs.existsSync(at('never.txt'))).toBe(false);
    expect(nfs.existsSync(p())).toBe(true);
  });

  it('a File used outside a fiber: its methods throw NotInFiberError, dispose closes synchronously', async () => {
    const f = await inFiber(() => fs.open(p()));
    expect(thrown(() => f.read(Buffer.alloc(1)))).toBeInstanceOf(NotInFiberError);
    const fd = f.fd;
    f[Symbol.dispose]();
    expect(f.fd).toBe(-1);
    expect(nfs.existsSync(`/proc/self/fd/${fd}`) && nfs.readlinkSync(`/proc/self/fd/${fd}`) === p()).toBe(false);
  });
});

describe('spindle/fs: concurrency', () => {
  it('100 fibers read 100 files and slices of one shared File at once', async () => {
    nfs.mkdirSync(at('many'));
    for (let i = 0; i < 100; i++) nfs.writeFileSync(at('many', `f${i}`), `file ${i} `.repeat(400 + i));
    const shared = Buffer.alloc(100 * 4096);
    for (let i = 0; i < shared.length; i++) shared[i] = (i >> 12) & 0xff;
    nfs.writeFileSync(at('shared.bin'), shared);
    const results = await inFiber(() => {
      const file = fs.open(at('shared.bin'));
      const workers = Array.from({ length: 100 }, (_, i) =>
        spawn(() => {
          const text = fs.readFile(at('many', `f${i}`), 'utf8');
          const slice = Buffer.alloc(4096);
          const n = file.read(slice, 0, 4096, i * 4096);
          return { ok: text === `file ${i} `.repeat(400 + i), n, slice: slice.every((b) => b === i) };
        }),
      );
      const out = workers.map((w) => w.join());
      file.close();
      return out;
    });
    expect(results.every((r) => r.ok && r.n === 4096 && r.slice)).toBe(true);
    expect(fs._inFlight()).toBe(0);
  });

  it('other fibers keep running while a fiber waits on the file system', async () => {
    nfs.writeFileSync(at('big2'), Buffer.alloc(8 << 20, 3));
    const out = await inFiber(() => {
      let ticks = 0;
      let done = false;
      const ticker = spawn(() => {
        while (!done) {
          ticks++;
          yieldNow();
        }
      });
      const data = fs.readFile(at('big2'));
      done = true;
      ticker.join();
      return { len: data.length, ticks };
    });
    expect(out.len).toBe(8 << 20);
    expect(out.ticks).toBeGreaterThan(0);
  });
});

describe('spindle/fs: interruption and timeouts (in-process)', () => {
  it('a pending interruption is thrown at the call, before any IO starts', async () => {
    const p = at('never-written.txt');
    const f = spawn(() => {
      fs.writeFile(p, 'x');
    });
    f.interrupt('stop');
    const error = await f.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FiberInterruptedError);
    expect(nfs.existsSync(p)).toBe(false);
    expect(fs._inFlight()).toBe(0);
  });

  it('an operation that completed before the interruption is delivered; the interruption comes at the next point', async () => {
    const p = at('delivered.txt');
    nfs.writeFileSync(p, 'abc');
    const log: string[] = [];
    await inFiber(() => {
      const target = spawn(() => {
        const s = fs.stat(p);
        log.push(`stat ${s.size}`);
        try {
          yieldNow();
          sleep(1000);
          log.push('slept');
        } catch (error) {
          log.push(error instanceof FiberInterruptedError ? 'interrupted at the next point' : String(error));
        }
      });
      // Wait until the stat completed natively while the target has not run yet.
      for (let i = 0; i < 100_000 && !(fs._inFlight() === 0 && fibers().find((f) => f.id === target.id)?.waitingOn?.startsWith('fs.stat')); i++) {
        yieldNow();
      }
      target.interrupt();
      target.join();
    });
    expect(log).toEqual(['stat 3', 'interrupted at the next point']);
  });

  it('interrupting readFile at random moments never leaks a descriptor', async () => {
    nfs.writeFileSync(at('leak.bin'), Buffer.alloc(4 << 20, 9));
    const fdCount = (): number => nfs.readdirSync('/proc/self/fd').length;
    const before = fdCount();
    let interrupted = 0;
    await inFiber(() => {
      for (let i = 0; i < 150; i++) {
        const f = spawn(() => fs.readFile(at('leak.bin')));
        for (let k = 0; k < i % 15; k++) yieldNow();
        f.interrupt();
        try {
          f.join();
        } catch (error) {
          if (!(error instanceof FiberInterruptedError)) throw error;
          interrupted++;
        }
      }
    });
    expect(interrupted).toBeGreaterThan(0);
    expect(fdCount()).toBe(before);
    expect(fs._inFlight()).toBe(0);
  });

  it('timeout: 0 times out a call that has to wait; generous timeouts succeed', async () => {
    nfs.writeFileSync(at('t.txt'), 't');
    const out = await inFiber(() => ({
      zero: thrown(() => fs.readFile(at('big'), { timeout: 0 })),
      ok: fs.readFile(at('t.txt'), { encoding: 'utf8', timeout: 10_000 }),
      stat: fs.stat(at('t.txt'), { timeout: 10_000 }).size,
    }));
    expect(out.zero).toBeInstanceOf(TimeoutError);
    expect((out.zero as Error).message).toBe('fs.readFile timed out after 0 ms');
    expect(out.ok).toBe('t');
    expect(out.stat).toBe(1);
  });
});
