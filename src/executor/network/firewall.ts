/**
 * Installs, checks and removes the rules of egress-rules.ts with iptables and ip6tables. Only our
 * own chains are created, flushed or deleted; in Docker's and the system's chains we add or delete
 * nothing but our one jump per hook.
 *
 * Idempotent and safe against concurrent installers (two executors starting together): each
 * family is one `iptables-restore --noflush` transaction that refills our chains and deletes as
 * many jumps as it counted before inserting one; when another installer changed the count in
 * between, a `-D` fails, nothing is applied, and the count is read again. Installers that both
 * counted none both insert one; each then counts again and repeats the round until one jump is left.
 */

import { errorMessage } from '../../lib/errors.js';
import { commandOutput, commandOutputWithInput } from '../command.js';
import { type FamilyRules, type Hook, installScript, removeScript } from './egress-rules.js';

const TIMEOUT_MS = 30_000;
/** xtables lock wait, seconds: Docker and other executors take the same lock. */
const LOCK_WAIT = '30';
const INSTALL_ATTEMPTS = 5;

const bin = (family: 4 | 6) => (family === 4 ? 'iptables' : 'ip6tables');

/** `-S` of one chain, or undefined when the chain does not exist. */
async function listChain(family: 4 | 6, chain: string): Promise<string[] | undefined> {
  try {
    const out = await commandOutput([bin(family), '-w', LOCK_WAIT, '-S', chain], TIMEOUT_MS);
    return out.split('\n').filter((l) => l !== '');
  } catch {
    return undefined;
  }
}

/** Where each hook's jump goes: DOCKER-USER for forwarded IPv4 (Docker creates it); for IPv6,
 * DOCKER-USER when Docker manages ip6tables, else FORWARD itself. */
async function hookChains(family: 4 | 6): Promise<Record<Hook, string> | undefined> {
  if (family === 4) return { forward: 'DOCKER-USER', input: 'INPUT' };
  if (!(await listChain(6, 'INPUT'))) return undefined;
  return { forward: (await listChain(6, 'DOCKER-USER')) ? 'DOCKER-USER' : 'FORWARD', input: 'INPUT' };
}

async function countJumps(family: 4 | 6, rules: FamilyRules, hooks: Record<Hook, string>) {
  const counts: Record<Hook, number> = { forward: 0, input: 0 };
  for (const j of rules.jumps) {
    const lines = (await listChain(family, hooks[j.hook])) ?? [];
    counts[j.hook] = lines.filter((l) => l === `-A ${hooks[j.hook]} ${j.spec}`).length;
  }
  return counts;
}

/** The problems of one family's installed rules; empty when they are exactly `rules`. */
export async function checkFamily(rules: FamilyRules): Promise<string[]> {
  const tool = bin(rules.family);
  const hooks = await hookChains(rules.family);
  if (!hooks) return [`${tool} does not work on this host (cannot list the filter table)`];
  if (rules.family === 4 && !(await listChain(4, 'DOCKER-USER'))) {
    return [
      'iptables has no DOCKER-USER chain: is Docker running with its iptables support ("iptables": true)?',
    ];
  }
  const problems: string[] = [];
  for (const c of rules.chains) {
    const have = await listChain(rules.family, c.name);
    if (!have) {
      problems.push(`${tool} chain ${c.name} is missing`);
      continue;
    }
    const got = have.filter((l) => l.startsWith('-A '));
    if (got.join('\n') !== c.rules.join('\n')) {
      const missing = c.rules.filter((r) => !got.includes(r)).length;
      const extra = got.filter((r) => !c.rules.includes(r)).length;
      problems.push(
        `${tool} chain ${c.name} differs from the configuration (${missing} rule(s) missing, ${extra} unexpected${missing + extra === 0 ? ', order differs' : ''})`,
      );
    }
  }
  const counts = await countJumps(rules.family, rules, hooks);
  for (const j of rules.jumps) {
    if (counts[j.hook] !== 1) {
      problems.push(
        `${tool} chain ${hooks[j.hook]} has ${counts[j.hook]} jumps to ${j.chain} (want exactly 1)`,
      );
    }
  }
  return problems;
}

/** Installs one family's rules (see the module comment); then checks them. */
export async function installFamily(rules: FamilyRules): Promise<string[]> {
  const hooks = await hookChains(rules.family);
  if (!hooks) return [`${bin(rules.family)} does not work on this host (cannot list the filter table)`];
  let lastError = '';
  for (let attempt = 0; attempt < INSTALL_ATTEMPTS; attempt++) {
    const counts = await countJumps(rules.family, rules, hooks);
    try {
      await commandOutputWithInput(
        [`${bin(rules.family)}-restore`, '-w', LOCK_WAIT, '--noflush'],
        installScript(rules, hooks, counts),
        TIMEOUT_MS,
      );
    } catch (e) {
      lastError = errorMessage(e);
      continue;
    }
    // Two installers that both counted no jump both insert one (there is no `-D` to fail): the
    // next round sees two and deletes them before inserting one, and one of them wins.
    const after = await countJumps(rules.family, rules, hooks);
    if (rules.jumps.every((j) => after[j.hook] === 1)) return checkFamily(rules);
    lastError = `another installer changed the jumps (${rules.jumps.map((j) => `${hooks[j.hook]}: ${after[j.hook]}`).join(', ')})`;
  }
  return [`installing the ${bin(rules.family)} rules failed: ${lastError}`];
}

/** Removes our jumps and chains of one family; absent ones are fine. */
export async function removeFamily(rules: FamilyRules): Promise<void> {
  const hooks = await hookChains(rules.family);
  if (!hooks) return;
  for (let attempt = 0; attempt < INSTALL_ATTEMPTS; attempt++) {
    const counts = await countJumps(rules.family, rules, hooks);
    const existing = new Set<string>();
    for (const c of rules.chains) if (await listChain(rules.family, c.name)) existing.add(c.name);
    try {
      await commandOutputWithInput(
        [`${bin(rules.family)}-restore`, '-w', LOCK_WAIT, '--noflush'],
        removeScript(rules, hooks, counts, existing),
        TIMEOUT_MS,
      );
      return;
    } catch (e) {
      if (attempt === INSTALL_ATTEMPTS - 1) throw e;
    }
  }
}
