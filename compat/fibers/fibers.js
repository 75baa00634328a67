// `fibers` for code written against fibers 5.0.3: the Fiber function of spindle/fibers.
module.exports = require('spindle/fibers');
