// The async/await baseline of the channel benchmarks: a channel for async functions, written plainly.
// A queue of buffered values, a queue of waiting receivers (their resolvers) and a queue of waiting
// senders (their value and resolvers). Capacity 0 is a rendezvous: send resolves once a receiver took
// the value. After close, buffered values are still received, then recv rejects; send rejects at once,
// and senders waiting at the close are rejected.

export class PromiseChannelClosedError extends Error {
  constructor() {
    super('channel closed');
    this.name = 'PromiseChannelClosedError';
  }
}

/** A FIFO queue: an array and the index of its head, compacted once half of it is consumed. */
class Queue {
  items = [];
  head = 0;

  get length() {
    return this.items.length - this.head;
  }

  push(item) {
    this.items.push(item);
  }

  shift() {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export class PromiseChannel {
  #capacity;
  #buffer = new Queue();
  #receivers = new Queue(); // { resolve, reject }
  #senders = new Queue(); // { value, resolve, reject }
  #closed = false;

  constructor(capacity = 0) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`capacity must be an integer >= 0, got ${capacity}`);
    this.#capacity = capacity;
  }

  get closed() {
    return this.#closed;
  }

  /** Resolves once the value is buffered or taken by a receiver. */
  send(value) {
    if (this.#closed) return Promise.reject(new PromiseChannelClosedError());
    const receiver = this.#receivers.shift();
    if (receiver !== undefined) {
      receiver.resolve(value);
      return Promise.resolve();
    }
    if (this.#buffer.length < this.#capacity) {
      this.#buffer.push(value);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.#senders.push({ value, resolve, reject });
    });
  }

  /** Resolves with the next value; rejects with PromiseChannelClosedError once closed and drained. */
  recv() {
    if (this.#buffer.length > 0) {
      const value = this.#buffer.shift();
      const sender = this.#senders.shift();
      if (sender !== undefined) {
        this.#buffer.push(sender.value);
        sender.resolve();
      }
      return Promise.resolve(value);
    }
    const sender = this.#senders.shift();
    if (sender !== undefined) {
      sender.resolve();
      return Promise.resolve(sender.value);
    }
    if (this.#closed) return Promise.reject(new PromiseChannelClosedError());
    return new Promise((resolve, reject) => {
      this.#receivers.push({ resolve, reject });
    });
  }

  /** No more sends; waiting receivers and senders are rejected. Closing twice does nothing. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (let r = this.#receivers.shift(); r !== undefined; r = this.#receivers.shift()) r.reject(new PromiseChannelClosedError());
    for (let s = this.#senders.shift(); s !== undefined; s = this.#senders.shift()) s.reject(new PromiseChannelClosedError());
  }
}
