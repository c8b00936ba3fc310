import { describe, expect, it } from 'vitest';
import { createDemuxer } from '../../../../src/executor/runtimes/docker/demux.js';

function frame(type: number, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** Feeds the chunks; returns what each stream got, and the pieces in order. */
function demux(chunks: Buffer[]) {
  const got = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const order: string[] = [];
  const feed = createDemuxer((name, bytes) => {
    got[name].push(Buffer.from(bytes));
    order.push(`${name}:${bytes.toString('latin1')}`);
  });
  for (const c of chunks) feed(c);
  return {
    stdout: Buffer.concat(got.stdout).toString('latin1'),
    stderr: Buffer.concat(got.stderr).toString('latin1'),
    order,
  };
}

describe('docker attach demuxer', () => {
  const stream = Buffer.concat([
    frame(1, 'out one\n'),
    frame(2, 'err one\n'),
    frame(1, ''),
    frame(0, 'stdin goes to stderr\n'),
    frame(1, Buffer.from([0xc3, 0xbc, 0xe2, 0x82, 0xac, 0x0a])),
    frame(2, 'x'.repeat(300)),
  ]);
  const want = {
    stdout: `out one\n${Buffer.from('ü€\n').toString('latin1')}`,
    stderr: `err one\nstdin goes to stderr\n${'x'.repeat(300)}`,
  };

  it('splits frames into stdout and stderr whatever the chunk boundaries', () => {
    for (let i = 0; i <= stream.length; i++) {
      const got = demux([stream.subarray(0, i), stream.subarray(i)]);
      expect({ stdout: got.stdout, stderr: got.stderr }, `split at ${i}`).toEqual(want);
    }
    const bytewise = demux([...stream].map((b) => Buffer.from([b])));
    expect({ stdout: bytewise.stdout, stderr: bytewise.stderr }).toEqual(want);
  });

  it('keeps the order of frames across streams', () => {
    const got = demux([stream]);
    expect(got.order.slice(0, 3)).toEqual([
      'stdout:out one\n',
      'stderr:err one\n',
      'stderr:stdin goes to stderr\n',
    ]);
  });

  it('passes payloads on as views of the chunk, not copies', () => {
    const chunk = Buffer.concat([frame(1, 'abc'), frame(2, 'defg')]);
    const views: Buffer[] = [];
    createDemuxer((_name, bytes) => views.push(bytes))(chunk);
    expect(views.map((v) => v.toString())).toEqual(['abc', 'defg']);
    for (const v of views) expect(v.buffer).toBe(chunk.buffer);
  });

  it('passes a frame split across chunks on in pieces as they arrive', () => {
    const f = frame(1, 'hello world');
    const pieces: string[] = [];
    const feed = createDemuxer((_name, bytes) => pieces.push(bytes.toString()));
    feed(f.subarray(0, 12));
    expect(pieces).toEqual(['hell']);
    feed(f.subarray(12));
    expect(pieces).toEqual(['hell', 'o world']);
  });

  it('treats a stream that is not multiplexed (a TTY) as stdout from there on', () => {
    const got = demux([
      Buffer.concat([frame(1, 'ok\n'), Buffer.from('plain tty output\n')]),
      Buffer.from('more'),
    ]);
    expect(got.stdout).toBe('ok\nplain tty output\nmore');
    expect(got.stderr).toBe('');
  });
});
