/**
 * The parsers the server's settings share (config/server.ts): each a zod pipeline from the raw
 * flag or variable text, with the message that says what a valid value looks like.
 */
import { z } from 'zod';
import { durationMs, int, type Parser, parser, sizeBytes } from './parsers.js';

export const MIN_TOKEN_LENGTH = 20;

export const token = () =>
  z.string().min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters`);

/** A duration in milliseconds, then `check` (its minimum, with the message that names it). */
export const duration = (check: z.ZodNumber = z.number()) =>
  durationMs(() => 'must be a duration such as "25s" or "30m"').pipe(check);

export const size = (check: z.ZodNumber) =>
  sizeBytes(() => 'must be a size such as "10Mi" or "1048576"').pipe(check.int());

export const count = (check: z.ZodNumber) =>
  int({ min: 0, message: () => 'must be a non-negative integer' }).pipe(check.int());

/** `HOST:PORT`; a bracketed IPv6 host is unbracketed, an empty host is 0.0.0.0. */
export const listen = (): Parser<{ host: string; port: number }> =>
  parser(
    (s) => {
      const m = /^(.*):(\d{1,5})$/.exec(s.trim());
      return m ? { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: Number(m[2]) } : undefined;
    },
    () => 'must be HOST:PORT, e.g. 127.0.0.1:3080',
  ).pipe(z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }));

/** `QUEUE=WEIGHT,...`; the first malformed item is the problem. */
export const weights = (): Parser<Record<string, number>> =>
  z
    .string()
    .transform((s, ctx) => {
      const out: Record<string, number> = {};
      for (const part of s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const m = /^([^=\s]+)=(\d+(?:\.\d+)?)$/.exec(part);
        if (!m) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not QUEUE=WEIGHT` });
          return z.NEVER;
        }
        out[m[1]!] = Number(m[2]);
      }
      return out;
    })
    .pipe(z.record(z.number().positive('weights must be positive')));

export const AT_LEAST_1S = z.number().min(1000, 'must be at least 1s');
export const AT_LEAST_100MS = z.number().min(100, 'must be at least 100ms');
export const AT_LEAST_1KI = z.number().min(1024, 'must be at least 1Ki');
