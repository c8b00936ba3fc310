/**
 * Append requests of the log-append extension, built from what the output cap kept of an entry.
 *
 * Contracts:
 *   - No request carries more than APPEND_CHUNK_BYTES of output (plus the marker): unsent head parts
 *     first, then, once the entry is closed, the marker (when bytes were dropped) and the tail.
 *     While the entry is open and has spilled past the head, there is nothing to send.
 *   - Every request is built in one buffer of the logger, reused for the next one; the sink copies
 *     what it keeps before its append() returns.
 *   - `acknowledged` is called only for the batch the server accepted, so a retry resends from the
 *     same offset; head parts the server has are let go of, and after the last batch the entry's
 *     text is released.
 */
import { Buffer } from 'node:buffer';
import {
  APPEND_CHUNK_BYTES,
  type CappedOutput,
  copyTail,
  releaseOutput,
  tailByteAt,
  truncationMarker,
} from './output-cap.js';
import { EMPTY } from './utf8.js';

/** What the server acknowledged of an entry's output (append mode). */
export interface SentOutput {
  /** Head parts, bytes, marker and tail bytes already acknowledged by the server. */
  sentParts: number;
  sentBytes: number;
  sentMarker: boolean;
  sentTail: number;
}

export interface AppendBatch {
  /** A view of the batch buffer: valid until the next batch is built. */
  out: Buffer;
  bytes: number;
  parts: number;
  marker: boolean;
  tail: number;
  /** Nothing is left after it. */
  last: boolean;
}

export type BatchedOutput = CappedOutput & SentOutput;

export interface AppendBatcher {
  /** e's next request; `closed`: whether e was closed when its sync began. */
  next(e: BatchedOutput, closed: boolean): AppendBatch;
  /** Records a batch the server acknowledged and lets go of what it no longer needs. */
  acknowledged(e: BatchedOutput, b: AppendBatch): void;
}

/** After the final sync: nothing of the entry's text is needed any more. */
export function releaseSent(e: BatchedOutput) {
  releaseOutput(e);
  e.sentParts = 0;
  e.sentTail = e.ringBytes;
}

export function createAppendBatcher(capBytes: number): AppendBatcher {
  // Head parts and the tail fill at most APPEND_CHUNK_BYTES; the marker comes on top.
  const batchBytes =
    APPEND_CHUNK_BYTES + Buffer.byteLength(truncationMarker(Number.MAX_SAFE_INTEGER, capBytes));
  let batchBuffer = EMPTY;

  return {
    next(e, closed) {
      if (batchBuffer.length === 0) batchBuffer = Buffer.allocUnsafeSlow(batchBytes);
      let bytes = 0;
      let parts = 0;
      for (let i = e.sentParts; i < e.headParts.length; i++) {
        const part = e.headParts[i]!;
        if (parts > 0 && bytes + part.length > APPEND_CHUNK_BYTES) break;
        part.copy(batchBuffer, bytes);
        bytes += part.length;
        parts++;
      }
      const headDone = e.sentParts + parts === e.headParts.length;
      let marker = false;
      let tail = 0;
      if (closed && headDone) {
        if (!e.sentMarker) {
          marker = true;
          if (e.omitted > 0) bytes += batchBuffer.write(truncationMarker(e.omitted, capBytes), bytes, 'utf8');
        }
        const room = APPEND_CHUNK_BYTES - bytes;
        if (room > 0 && e.sentTail < e.ringBytes) {
          let end = Math.min(e.ringBytes, e.sentTail + room);
          while (end < e.ringBytes && end > e.sentTail && (tailByteAt(e, end) & 0xc0) === 0x80) end--;
          copyTail(e, e.sentTail, end, batchBuffer, bytes);
          tail = end - e.sentTail;
          bytes += tail;
        }
      }
      const last = closed && headDone && (e.sentMarker || marker) && e.sentTail + tail === e.ringBytes;
      return { out: batchBuffer.subarray(0, bytes), bytes, parts, marker, tail, last };
    },
    acknowledged(e, b) {
      for (let i = e.sentParts; i < e.sentParts + b.parts; i++) e.headParts[i] = EMPTY;
      e.sentParts += b.parts;
      e.sentBytes += b.bytes;
      if (b.marker) e.sentMarker = true;
      e.sentTail += b.tail;
      if (b.last) releaseSent(e);
    },
  };
}
