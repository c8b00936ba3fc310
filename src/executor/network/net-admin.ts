/** Whether this process may change the firewall (a module of its own: `executor up` asks before loading Docker's client). */
import { readFileSync } from 'node:fs';

/** True when this process may change the firewall: root, or CAP_NET_ADMIN in its effective set. */
export function hasNetAdmin(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n : false;
  } catch {
    return false;
  }
}
