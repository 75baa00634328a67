// `fibers/future` for code written against fibers 5.0.3: the Future function of spindle/fibers/future.
module.exports = require('spindle/fibers/future');
