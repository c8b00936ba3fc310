import { describe, expect, it } from 'vitest';
import {
  encodeLogStreamEvent,
  type LogStreamEvent,
  readLogStreamEvents,
  readSseMessages,
  SSE_KEEPALIVE,
} from '../../src/protocol/user-api.js';

/** A byte stream delivering `chunks` one read at a time; records whether the reader cancelled it. */
function streamOf(chunks: string[]) {
  const state = { canceled: false };
  const bytes = chunks.map((c) => new TextEncoder().encode(c));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = bytes.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
    cancel() {
      state.canceled = true;
    },
  });
  return { body, state };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('server-sent events', () => {
  it('reads events split anywhere, skipping comments and blocks without data', async () => {
    const text = `event: a\ndata: 1\n\n${SSE_KEEPALIVE}data: two\ndata:  lines\n\nevent: empty\n\nevent: b\ndata: é\n\ndata: cut`;
    const bytes = new TextEncoder().encode(text);
    // Split inside a multi-byte character and inside the blank line.
    const cuts = [3, 17, 18, bytes.indexOf(0xc3) + 1, bytes.length];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let from = 0;
        for (const c of cuts) {
          controller.enqueue(bytes.slice(from, c));
          from = c;
        }
        controller.close();
      },
    });
    expect(await collect(readSseMessages(body))).toEqual([
      { event: 'a', data: '1' },
      { event: 'message', data: 'two\n lines' },
      { event: 'b', data: 'é' },
    ]);
  });

  it('decodes what the server encodes, and cancels the stream when the reader stops early', async () => {
    const events: LogStreamEvent[] = [
      { event: 'output', data: { attempt: 1, entryId: 2, data: 'line\n\nnext' } },
      { event: 'entry', data: { attempt: 1, entryId: 2 } as never },
    ];
    const { body, state } = streamOf([
      encodeLogStreamEvent(events[0]!),
      'event: other\ndata: {}\n\n',
      encodeLogStreamEvent(events[1]!),
      encodeLogStreamEvent({ event: 'output', data: { attempt: 1, entryId: 3, data: 'x' } }),
    ]);
    const seen: LogStreamEvent[] = [];
    for await (const e of readLogStreamEvents(body)) {
      seen.push(e);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(events);
    expect(state.canceled).toBe(true);
  });
});
