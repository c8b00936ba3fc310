/**
 * The one loader: flags, then the environment, then a deprecated alias, then the default -> each
 * setting's parser -> every problem collected, each naming its setting: missing required settings
 * first, then the others in declaration order.
 * Cross-setting rules and the shaping into a frozen config object with normalised units belong to
 * each program's loader, which calls this first.
 */
import { type Catalogue, type Setting, settingLabel, type Values } from './declare.js';

export type Env = Record<string, string | undefined>;

export interface Sources {
  env: Env;
  /**
   * Flag values keyed by the camel-cased flag (`stalledAfter`, as commander gives them), the flag
   * itself, or the variable name.
   */
  flags?: Record<string, unknown>;
}

export interface Loaded<C extends Catalogue> {
  /** The text each setting was parsed from (defaults included); undefined when unset. */
  raw: { [K in keyof C]: string | undefined };
  /** Names of the settings given by a flag, the variable or its alias (not by the default). */
  given: ReadonlySet<keyof C>;
  /** The parsed values; complete only when `problems` is empty. */
  values: Values<C>;
  problems: string[];
}

export interface LoadOptions {
  /** Completes "<setting>: " when a required setting has no value. */
  requiredMessage: string;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Flag, variable or alias text; an empty string counts as unset. */
function suppliedText(env: string, s: Setting, sources: Sources): string | undefined {
  const pick = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : String(v));
  const flags = sources.flags ?? {};
  return (
    (s.flag ? (pick(flags[camel(s.flag)]) ?? pick(flags[s.flag])) : undefined) ??
    pick(flags[env]) ??
    pick(sources.env[env]) ??
    (s.alias ? pick(sources.env[s.alias]) : undefined)
  );
}

export function loadSettings<C extends Catalogue>(
  catalogue: C,
  sources: Sources,
  options: LoadOptions,
): Loaded<C> {
  const raw: Record<string, string | undefined> = {};
  const values: Record<string, unknown> = {};
  const given = new Set<keyof C>();
  const missing: string[] = [];
  const problems: string[] = [];
  for (const [env, s] of Object.entries(catalogue)) {
    const supplied = suppliedText(env, s, sources);
    if (supplied !== undefined) given.add(env);
    const text = supplied ?? s.default;
    raw[env] = text;
    if (text === undefined) {
      if (s.required) missing.push(`${settingLabel(env, s)}: ${options.requiredMessage}`);
      continue;
    }
    const parsed = s.parse.safeParse(text);
    if (parsed.success) values[env] = parsed.data;
    else for (const issue of parsed.error.issues) problems.push(`${settingLabel(env, s)}: ${issue.message}`);
  }
  return {
    raw: raw as Loaded<C>['raw'],
    given,
    values: values as Values<C>,
    problems: [...missing, ...problems],
  };
}
