// Process workers, restored ahead of need. Every capOS process is a Web Worker of its
// own; a worker takes a few hundred milliseconds to restore its Pyodide snapshot, so
// workers are restored before spawns arrive and a spawn only sends its program.
//
// Two cores decide the rules: at most MAX_RESTORING workers restore at once (more
// only slow each other, and the prompt), and the programs the prompt waits for (init,
// then the shell) get the first workers: a resident service spawned before the shell
// waits for a worker of its own, restored once the shell has started, rather than
// take the shell's or slow it down (its calls simply queue meanwhile).
import { sendImage } from "/static/image.js";

const MAX_RESTORING = 2;
// A spare a spawn took is replaced this much later, not at once: on two cores a
// restore beside the child's first calls made `run` twice as slow.
const REFILL_DELAY_MS = 1000;

export class WorkerPool {
  constructor({ url, versions, image, first, start, restored, failed, mark }) {
    this.url = url;
    this.versions = versions;
    this.image = image; // what workers restore from, as it comes (image.js)
    this.first = [...first]; // modules the prompt waits for, not yet spawned
    this.start = start; // (worker, spawn) => void: hand the worker its program
    this.restored = restored; // (path, steps) => void: how a worker restored (pyodide-boot.js)
    this.failed = failed; // (text) => void: a worker could not restore
    this.mark = mark;
    this.ready = []; // restored, idle workers
    this.waiting = []; // spawns with no worker yet
    this.restoring = 0;
    this.fill();
  }

  spawn(request) {
    const index = this.first.indexOf(request.module);
    if (index >= 0) {
      this.first.splice(index, 1);
      this.waiting.unshift({ ...request, priority: true });
    } else {
      this.waiting.push(request);
    }
    this.assign();
  }

  get spares() {
    return this.ready.length;
  }

  assign() {
    let started = false;
    while (this.ready.length && this.waiting.length) {
      // a service leaves the workers the prompt's programs will need
      if (!this.waiting[0].priority && this.ready.length <= this.first.length) break;
      this.start(this.ready.shift(), this.waiting.shift());
      started = true;
    }
    clearTimeout(this.refill);
    if (started && !this.waiting.length && !this.first.length) {
      this.refill = setTimeout(() => this.fill(), REFILL_DELAY_MS); // only a spare is due
    } else {
      this.fill();
    }
  }

  // Keep enough workers restoring: one per reserved program until they have all
  // started, then one per waiting spawn, or a single spare once nothing waits, so
  // `run` starts a child in milliseconds.
  fill() {
    const wanted = this.first.length ? this.first.length : Math.max(this.waiting.length, 1);
    while (this.ready.length + this.restoring < wanted && this.restoring < MAX_RESTORING) {
      this.restore();
    }
  }

  restore() {
    this.restoring += 1;
    const worker = new Worker(this.url, { type: "module" });
    worker.onmessage = ({ data }) => {
      if (data.kind === "failed") this.failed(data.text);
      if (data.kind !== "ready") return;
      this.mark("process worker ready");
      this.restored(data.path, data.steps);
      this.restoring -= 1;
      this.ready.push(worker);
      this.assign();
    };
    sendImage(worker, this.versions, this.image);
  }
}
