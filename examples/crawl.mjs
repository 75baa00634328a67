// Linear code over concurrent waits: each fiber reads like blocking code, yet they all run at once.
// Run: node examples/crawl.mjs   (after `npm install`)
import { setTimeout as delay } from 'node:timers/promises';

import { FiberLocal, scope, sleep, spawn, wait } from '../dist/index.js';

// Stands in for any promise-returning API (a database client, fetch...).
async function fetchPage(url) {
  await delay(20 + (url.length % 5) * 10);
  return { url, links: url.length < 12 ? [`${url}/a`, `${url}/b`] : [] };
}

const depth = new FiberLocal(0);

function crawl(url, s, seen) {
  if (seen.has(url)) return;
  seen.add(url);
  const page = wait(fetchPage(url)); // suspends this fiber only
  console.log(`${'  '.repeat(depth.get())}${page.url}`);
  for (const link of page.links) {
    const level = depth.get() + 1;
    s.spawn(() => {
      depth.set(level);
      crawl(link, s, seen);
    });
  }
}

const main = spawn(() => {
  const seen = new Set();
  const started = performance.now();
  scope((s) => crawl('/home', s, seen)); // returns when every page is done
  sleep(10);
  return `${seen.size} pages in ${Math.round(performance.now() - started)} ms`;
});

console.log(await main.result());
