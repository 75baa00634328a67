// Loads the example consumer and hands it spindle's exports (where the C API table is found).
//   const consumer = require('./examples/native-consumer')(require('spindle'));
'use strict';
const path = require('node:path');

module.exports = function load(spindle, file = path.join(__dirname, 'build', `node-${process.versions.node}`, 'native_consumer.node')) {
  const addon = require(file);
  addon.init(spindle);
  return addon;
};
