// The JavaScript half of kernel/hosts/sab.py. A process's ring region is a
// SharedArrayBuffer, which Pyodide's Python cannot map; each side's Python works
// on a copy of it in its own WebAssembly memory (a bytearray), and a port moves
// bytes between the two only where and when they must agree:
// - flush: what this side's Python wrote: the ranges listed in the copy's tail
//   (sab.py), in the order it wrote them, then the queue slots it filled, then the
//   header fields it owns, its queue's tail last, so the other side never sees a
//   tail before its slots. Header words go one Atomics.store each: whole.
// - take: at a doorbell, the other side's tail (which publishes the slots taken
//   after it), its other header fields, and its queue's slots. The kernel takes
//   the bytes each new SQE names (params, transfer descriptors) with them.
// - read: a buffer-area range, fresh, when a process's Python reads it.
// Offsets are kernel/abi.py's.
export const H = {
  SQ_HEAD: 8, SQ_TAIL: 12, CQ_HEAD: 16, CQ_TAIL: 20, CQ_OVERFLOW: 32, SQ_CORRUPTIONS: 36,
  FLAGS: 52, ENTER_MIN: 56, EXIT_REQUESTED: 60, EXIT_CODE: 64, IDLE_WAKES: 68,
  DOORBELL: 72, WAKE: 76, MEMORY_LIMIT_MIB: 80,
};
const HEADER_END = 2048; // where the SQ starts: below it, every write is a header word
const BUFFER_OFFSET = 8192; // the buffer area: SQE addresses are offsets into it
// Where an SQE names buffer-area bytes (u32s; the transfer count is word 0's upper half).
const SQE_PARAMS_LEN = 20;
const SQE_PARAMS_ADDR = 24;
const SQE_XFER_ADDR = 36;
const XFER_SIZE = 8;
// What each side writes: a queue (slots and tail) and header fields. DOORBELL, WAKE
// and ENTER_MIN are written by the workers' JavaScript, straight into the region.
export const PROCESS = {
  queue: { offset: 2048, entries: 16, size: 64, tail: H.SQ_TAIL },
  fields: [H.CQ_HEAD, H.EXIT_CODE, H.EXIT_REQUESTED],
};
export const KERNEL = {
  queue: { offset: 3072, entries: 32, size: 32, tail: H.CQ_TAIL },
  fields: [H.SQ_HEAD, H.CQ_OVERFLOW, H.SQ_CORRUPTIONS, H.FLAGS, H.IDLE_WAKES],
};
// What the kernel takes from a process at its doorbell besides that: how many
// completions the process waits for (kernel/hosts/browser.py _wake).
const TAKEN_BY_KERNEL = [H.ENTER_MIN];

// A bytearray in this worker's WebAssembly memory, as typed arrays. Growing that
// memory detaches every view of it, so they are made again when that happened.
export class HeapBytes {
  constructor(pyBytes, memory) {
    this.buffer = pyBytes.getBuffer("u8"); // held: the bytearray can neither move nor resize
    this.memory = memory; // () => the WebAssembly memory's ArrayBuffer, as it is now
    this.renew();
  }

  renew() {
    const { byteOffset, byteLength } = this.buffer.data;
    this.u8 = new Uint8Array(this.memory(), byteOffset, byteLength);
    this.i32 = new Int32Array(this.memory(), byteOffset, byteLength >> 2);
  }

  get bytes() {
    if (this.u8.byteLength === 0) this.renew();
    return this.u8;
  }

  get words() {
    if (this.u8.byteLength === 0) this.renew();
    return this.i32;
  }

  release() {
    this.buffer.release();
  }
}

export class RegionPort {
  // `writer`: PROCESS or KERNEL, the side whose copy this is.
  constructor(sab, copy, memory, writer) {
    this.sab = sab;
    this.u8 = new Uint8Array(sab);
    this.i32 = new Int32Array(sab);
    this.copy = new HeapBytes(copy, memory);
    this.writes = writer;
    this.takes = writer === KERNEL ? PROCESS : KERNEL;
    this.extra = writer === KERNEL ? TAKEN_BY_KERNEL : [];
    this.dirty = sab.byteLength >> 2; // the word of the copy's tail that counts its ranges
    this.copy.bytes.set(this.u8); // whatever the region holds already (a process's CapSet)
  }

  flush() {
    if (!this.copy) return; // released: the process has ended
    const words = this.copy.words;
    const bytes = this.copy.bytes;
    const count = words[this.dirty];
    for (let i = 0; i < count; i++) {
      let offset = words[this.dirty + 1 + 2 * i];
      const end = offset + words[this.dirty + 2 + 2 * i];
      for (; offset < end && offset < HEADER_END; offset += 4) {
        Atomics.store(this.i32, offset >> 2, words[offset >> 2]);
      }
      if (offset < end) this.u8.set(bytes.subarray(offset, end), offset);
    }
    words[this.dirty] = 0;
    const { queue, fields } = this.writes;
    const tail = words[queue.tail >> 2];
    const published = Atomics.load(this.i32, queue.tail >> 2);
    const filled = Math.min((tail - published) >>> 0, queue.entries);
    for (let i = 0; i < filled; i++) {
      const at = queue.offset + ((published + i) & (queue.entries - 1)) * queue.size;
      this.u8.set(bytes.subarray(at, at + queue.size), at);
    }
    for (const field of fields) {
      const index = field >> 2;
      if (Atomics.load(this.i32, index) !== words[index]) Atomics.store(this.i32, index, words[index]);
    }
    if (filled || published !== tail) Atomics.store(this.i32, queue.tail >> 2, tail);
  }

  take() {
    if (!this.copy) return;
    const words = this.copy.words;
    const { queue, fields } = this.takes;
    words[queue.tail >> 2] = Atomics.load(this.i32, queue.tail >> 2);
    for (const field of fields) words[field >> 2] = Atomics.load(this.i32, field >> 2);
    for (const field of this.extra) words[field >> 2] = Atomics.load(this.i32, field >> 2);
    const end = queue.offset + queue.entries * queue.size;
    this.copy.bytes.set(this.u8.subarray(queue.offset, end), queue.offset);
    if (this.writes === KERNEL) this.takeNamed(words, queue);
  }

  // The buffer-area bytes the SQEs not yet consumed name, so the kernel reads them
  // without a crossing each. A range outside the buffer area is left alone: the
  // kernel refuses that SQE (BAD_BUFFER) without reading it.
  takeNamed(words, queue) {
    const head = words[H.SQ_HEAD >> 2];
    const pending = (words[queue.tail >> 2] - head) >>> 0;
    if (pending > queue.entries) return; // a nonsense tail: the kernel discards the SQ
    for (let i = 0; i < pending; i++) {
      const slot = (queue.offset + ((head + i) & (queue.entries - 1)) * queue.size) >> 2;
      this.takeRange(words[slot + (SQE_PARAMS_ADDR >> 2)], words[slot + (SQE_PARAMS_LEN >> 2)]);
      this.takeRange(words[slot + (SQE_XFER_ADDR >> 2)], (words[slot] >>> 16) * XFER_SIZE);
    }
  }

  takeRange(addr, length) {
    const start = BUFFER_OFFSET + (addr >>> 0);
    const end = start + (length >>> 0);
    if (end > start && end <= this.u8.length) {
      this.copy.bytes.set(this.u8.subarray(start, end), start);
    }
  }

  read(offset, length) {
    if (!this.copy) return;
    this.flush(); // so a range this side wrote and reads back reads as written
    this.copy.bytes.set(this.u8.subarray(offset, offset + length), offset);
  }

  get(field) {
    return Atomics.load(this.i32, field >> 2) >>> 0;
  }

  release() {
    this.copy.release();
    this.copy = null;
  }
}
