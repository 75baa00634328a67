// node examples/native-consumer/build.mjs && node examples/native-consumer/demo.cjs
// Four fibers each run a blocking C computation on a worker thread; the loop keeps ticking meanwhile.
'use strict';
const spindle = require('../..'); // require('spindle') in a project that depends on it
const consumer = require('.')(spindle);

const ticker = setInterval(() => process.stdout.write('.'), 20);
const fibers = [1e5, 2e5, 3e5, 4e5].map((n) => spindle.spawn(() => consumer.compute(n, 200), { name: `collatz ${n}` }));
Promise.all(fibers.map((f) => f.result())).then((totals) => {
  clearInterval(ticker);
  console.log('\ntotals:', totals, 'live tokens:', consumer.stats().liveTokens);
});
