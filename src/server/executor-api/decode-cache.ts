/**
 * Decoded bodies by their text, for routes whose clients repeat themselves: an idle executor's
 * heartbeat body is the same every 5 s. A hit skips JSON.parse and the schema; the same text
 * always decodes to the same value, so the answer is the one a fresh decode would give. Values
 * are shared between requests: callers must not change them.
 *
 * Bounded: bodies longer than `maxTextLength` characters are not kept (a body carrying metrics changes every time),
 * and entries live in two generations of at most `maxEntries` each; a full generation becomes the
 * old one and the older is dropped, so what is still sent stays (moved up on its next hit).
 */
export interface DecodeCache<T> {
  get(text: string): T | undefined;
  set(text: string, value: T): void;
}

/** 16,384 per generation: every idle executor of a replica at 10,000 executors stays in. */
export function createDecodeCache<T>(maxEntries = 16_384, maxTextLength = 2_048): DecodeCache<T> {
  let current = new Map<string, T>();
  let previous = new Map<string, T>();
  const put = (text: string, value: T) => {
    if (current.size >= maxEntries) {
      previous = current;
      current = new Map();
    }
    current.set(text, value);
  };
  return {
    get(text) {
      if (text.length > maxTextLength) return undefined;
      const hit = current.get(text);
      if (hit !== undefined) return hit;
      const old = previous.get(text);
      if (old !== undefined) {
        previous.delete(text);
        put(text, old);
      }
      return old;
    },
    set(text, value) {
      if (text.length <= maxTextLength) put(text, value);
    },
  };
}
