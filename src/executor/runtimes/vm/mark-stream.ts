/**
 * The end of one guest output stream. The guest writes a random mark after the step's last byte on
 * `out` and on `err`; the host has all of a stream once it has seen the mark, and only then kills
 * the VM (data still in flight inside QEMU would be lost by a kill, and by the guest's own
 * power-off). Bytes that may be the start of the mark are held back until they are known not to be,
 * so the mark never reaches the log, whatever the chunk boundaries.
 */
export class MarkStream {
  private held = Buffer.alloc(0);
  private done = false;
  private readonly mark: Buffer;

  constructor(
    mark: string,
    private readonly emit: (chunk: Buffer) => void,
  ) {
    if (!mark) throw new Error('MarkStream: empty mark');
    this.mark = Buffer.from(mark);
  }

  /** True once the mark was seen; later bytes are ignored. */
  get ended(): boolean {
    return this.done;
  }

  write(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return;
    const data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    const at = data.indexOf(this.mark);
    if (at >= 0) {
      if (at > 0) this.emit(data.subarray(0, at));
      this.held = Buffer.alloc(0);
      this.done = true;
      return;
    }
    const keep = this.heldSuffix(data);
    if (data.length > keep) this.emit(data.subarray(0, data.length - keep));
    this.held = Buffer.from(data.subarray(data.length - keep));
  }

  /** Emits what is held back (the stream ended without its mark: the VM died). */
  flush(): void {
    if (this.done) return;
    if (this.held.length > 0) this.emit(this.held);
    this.held = Buffer.alloc(0);
  }

  /** Length of the longest suffix of `data` that is a proper prefix of the mark. */
  private heldSuffix(data: Buffer): number {
    const max = Math.min(this.mark.length - 1, data.length);
    for (let n = max; n > 0; n--) {
      if (data.subarray(data.length - n).equals(this.mark.subarray(0, n))) return n;
    }
    return 0;
  }
}
