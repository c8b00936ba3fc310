/**
 * How a configuration variable is declared: once, in a catalogue keyed by its environment variable
 * name, with its flag, default, parser and the sentence that documents it. The loader
 * (`load.ts`), the docs tables and the `--help` text (`render-docs.ts`) all read the same
 * declarations.
 */
import type { z } from 'zod';
import type { Parser } from './parsers.js';

export interface Setting<T = unknown> {
  /** Command-line flag, `--<flag> VALUE`; a flag wins over its environment variable. */
  readonly flag?: string;
  /** Deprecated variable read when this one is unset. */
  readonly alias?: string;
  /** Default as the user would write it; parsed like any supplied value. */
  readonly default?: string;
  readonly required?: boolean;
  /** One or two sentences for the docs table; the `--help` text of a flag. */
  readonly description: string;
  readonly parse: Parser<T>;
}

/** Settings keyed by environment variable name, in the order they are documented. */
export type Catalogue = Readonly<Record<string, Setting>>;

/** A setting's parsed value; undefined only when it has neither a default nor is required. */
type ValueOf<S extends Setting> = S extends { default: string } | { required: true }
  ? z.output<S['parse']>
  : z.output<S['parse']> | undefined;

export type Values<C extends Catalogue> = { -readonly [K in keyof C]: ValueOf<C[K]> };

/** How problems name a setting: `--flag / VARIABLE` when it has a flag, else `VARIABLE`. */
export const settingLabel = (env: string, s: Setting): string => (s.flag ? `--${s.flag} / ${env}` : env);

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
