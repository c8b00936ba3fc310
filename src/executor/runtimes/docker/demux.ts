/**
 * Splits Docker's multiplexed attach stream (a container without a TTY) into stdout and stderr.
 * Each frame is an 8-byte header (stream type, 3 zero bytes, payload length as uint32 big-endian)
 * and its payload: https://docs.docker.com/reference/api/engine/version/v1.47/#tag/Container/operation/ContainerAttach
 *
 * Payloads are passed on as views of the chunks they arrived in, as soon as they arrive: a frame
 * split across chunks goes out in pieces, and nothing is copied or buffered but a header split
 * across chunks (8 bytes). dockerode's `modem.demuxStream` instead concatenates each chunk onto
 * the bytes left over and copies the rest after every frame: for the writer of `npm run bench --
 * logs` (64 KiB chunks, frames of 4 to 32 KiB) it allocated 4.1 times the output in buffers that
 * were garbage at once.
 *
 * Type 1 is stdout; 0 (stdin) and 2 are stderr, as dockerode has them. A header with any other type
 * means the stream is not multiplexed after all (a TTY), and from there on every byte, that header
 * included, is stdout.
 */
import { Buffer } from 'node:buffer';

export type DemuxSink = (stream: 'stdout' | 'stderr', bytes: Buffer) => void;

const HEADER_BYTES = 8;

/** Returns the function to call with each chunk of the attach stream, in order. */
export function createDemuxer(sink: DemuxSink): (chunk: Buffer) => void {
  const header = Buffer.alloc(HEADER_BYTES);
  let headerBytes = 0;
  /** Payload bytes of the current frame not yet passed on; 0 while reading a header. */
  let remaining = 0;
  let stream: 'stdout' | 'stderr' = 'stdout';
  let raw = false;

  return (chunk: Buffer) => {
    if (raw) {
      if (chunk.length > 0) sink('stdout', chunk);
      return;
    }
    let pos = 0;
    while (pos < chunk.length) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - pos);
        sink(stream, pos === 0 && n === chunk.length ? chunk : chunk.subarray(pos, pos + n));
        remaining -= n;
        pos += n;
        continue;
      }
      const n = Math.min(HEADER_BYTES - headerBytes, chunk.length - pos);
      chunk.copy(header, headerBytes, pos, pos + n);
      headerBytes += n;
      pos += n;
      if (headerBytes < HEADER_BYTES) return;
      headerBytes = 0;
      const type = header[0]!;
      if (type > 2) {
        raw = true;
        sink('stdout', Buffer.from(header));
        if (pos < chunk.length) sink('stdout', chunk.subarray(pos));
        return;
      }
      stream = type === 1 ? 'stdout' : 'stderr';
      remaining = header.readUInt32BE(4);
    }
  };
}
