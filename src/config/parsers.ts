/**
 * The value parsers of configuration variables: each is a zod schema from the variable's text to its
 * value, and a failure is one zod issue whose message completes "<variable>: ...". Messages are
 * parameters where the executor and the server word them differently: both wordings are what users
 * of each program already see.
 */
import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from '../lib/duration.js';
import { isPositive, parseQuantity, QUANTITY_EXAMPLES } from '../lib/quantity.js';

/** What a setting's text is parsed with: text in, value out. */
export type Parser<T> = z.ZodType<T, z.ZodTypeDef, string>;

type Message = (text: string) => string;

const quoted = (s: string) => JSON.stringify(s);

/** A parser from a reader that returns undefined when the text is not valid; `message` says why. */
export function parser<T>(read: (text: string) => T | undefined, message: Message): Parser<T> {
  return z.string().transform((s, ctx): T => {
    const v = read(s);
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: message(s) });
      return z.NEVER;
    }
    return v;
  });
}

// Go's strconv.ParseBool, which Sourcegraph's executor reads its booleans with.
const GO_BOOL: Record<string, boolean> = {
  '1': true,
  t: true,
  T: true,
  true: true,
  TRUE: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  false: false,
  FALSE: false,
  False: false,
};

/** Go boolean syntax (`true`, `1`, `t`, ...); undefined for anything else. */
export const readBool = (s: string | undefined): boolean | undefined =>
  s === undefined ? undefined : GO_BOOL[s.trim()];

export const bool = (): Parser<boolean> => parser(readBool, (s) => `must be true or false, got ${quoted(s)}`);

/** One of a fixed set of words, exactly as written. */
export const oneOf = <const T extends readonly [string, ...string[]]>(
  values: T,
  message: string,
): Parser<T[number]> => z.enum(values as unknown as [T[number], ...T[number][]], { message });

export interface IntOptions {
  min: number;
  max?: number;
  /** Default: "must be an integer from <min> to <max>, got <text>" (or ">= <min>" without a max). */
  message?: Message;
}

/** A decimal integer within [min, max]. */
export function int({ min, max = Number.MAX_SAFE_INTEGER, message }: IntOptions): Parser<number> {
  const range = max < Number.MAX_SAFE_INTEGER ? ` from ${min} to ${max}` : ` >= ${min}`;
  return parser(
    (s) => {
      const t = s.trim();
      const n = /^-?\d+$/.test(t) ? Number(t) : Number.NaN;
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
    },
    message ?? ((s) => `must be an integer${range}, got ${quoted(s)}`),
  );
}

/** A Go duration (`250ms`, `1h30m`, `0`), in milliseconds. */
export const durationMs = (
  message: Message = (s) => `must be a duration such as "1s", "30m" or "0", got ${quoted(s)}`,
): Parser<number> => parser(parseDurationMs, message);

/** A data size (`16MiB`, `12G`, `0`), in bytes. */
export const sizeBytes = (
  message: Message = (s) => `must be a size such as "16MiB", "1G" or "0", got ${quoted(s)}`,
): Parser<number> => parser(parseSizeBytes, message);

/** A data size kept as written, for values passed on to another system in its own syntax. */
export const sizeText = (message: Message): Parser<string> =>
  parser((s) => (parseSizeBytes(s) === undefined ? undefined : s), message);

/**
 * A positive Kubernetes quantity (`5Gi`, `500m`, `5G`), kept as written (trimmed): the grammar the
 * API server parses it with, so a value it would refuse (`5GB`, `5K`) is refused at start.
 */
export const quantity = (): Parser<string> =>
  parser(
    (s) => {
      const q = parseQuantity(s.trim());
      return q && isPositive(q) ? s.trim() : undefined;
    },
    (s) =>
      `must be a positive Kubernetes quantity such as ${QUANTITY_EXAMPLES} (a number with an optional suffix: Ki, Mi, Gi, Ti, Pi, Ei; k, M, G, T, P, E; m for thousandths), got ${quoted(s)}`,
  );

/** Items separated by `separator`, trimmed, empty ones dropped. */
export const list = (separator = ','): Parser<string[]> =>
  z.string().transform((s) =>
    s
      .split(separator)
      .map((x) => x.trim())
      .filter(Boolean),
  );

/** `k=v` items separated by commas. */
export const keyValues = (): Parser<Record<string, string>> =>
  z.string().transform((s, ctx) => {
    const out: Record<string, string> = {};
    for (const item of s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)) {
      const eq = item.indexOf('=');
      if (eq <= 0) {
        ctx.addIssue({ code: 'custom', message: `item ${quoted(item)} must be k=v` });
        continue;
      }
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  });

/** An http(s) URL with a host, kept as written. */
export const httpUrl = (): Parser<string> =>
  z.string().transform((s, ctx) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be a URL with a scheme and host, got ${quoted(s)}` });
      return z.NEVER;
    }
    if (!/^https?:$/.test(u.protocol) || u.host === '') {
      ctx.addIssue({ code: 'custom', message: `must be an http(s) URL with a host, got ${quoted(s)}` });
      return z.NEVER;
    }
    return s;
  });

/** An absolute filesystem path. */
export const absolutePath = (): Parser<string> =>
  z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });

/** `host:port`, `[v6]:port` or `:port` (host 0.0.0.0). */
export const hostPort = (): Parser<{ host: string; port: number }> =>
  parser(
    (s) => {
      const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s.trim());
      const port = m ? Number(m[3]) : Number.NaN;
      if (!m || port < 0 || port > 65535) return undefined;
      return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
    },
    (s) => `must be host:port (e.g. "0.0.0.0:9090" or ":9090"), got ${quoted(s)}`,
  );

/** JSON of a given shape; `problem` is the message when it has another (e.g. "must be a JSON array"). */
export const json = <T extends z.ZodTypeAny>(shape: T, problem: string): Parser<z.output<T>> =>
  z.string().transform((s, ctx): z.output<T> => {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `is not valid JSON: ${(e as Error).message}` });
      return z.NEVER;
    }
    const r = shape.safeParse(v);
    if (!r.success) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return r.data;
  });
