/**
 * The user a VM step runs as: the image's `USER` (`Config.User`) resolved against the image's own
 * /etc/passwd and /etc/group, by the rules Docker's runtime (runc's GetExecUser) applies when it
 * starts a container of that image:
 *   - `""`: root;
 *   - `name` or `uid`: a numeric value is always a uid; a passwd entry gives its uid, primary gid
 *     and home; a uid without an entry runs with gid 0 and home `/`; a name without one is an error;
 *   - `user:group`: the group by name or gid (a numeric gid without an entry is taken as is) replaces
 *     the primary gid; a group name without an entry is an error.
 * Pure: the caller reads the files (image-disks.ts, once per image).
 */

export interface ImageUser {
  uid: number;
  gid: number;
  /** HOME when neither the image nor the step sets it (Docker: the passwd entry's home). */
  home: string;
}

/** What a step of an image with this user gets; `error` when Docker would refuse to start it. */
export type ImageUserResult = ImageUser | { error: string };

/** A uid or gid in the range runc accepts (0 to 2^31 - 1). */
const MAX_ID = 2 ** 31 - 1;

const ROOT_HOME = '/root';

interface Entry {
  name: string;
  id: number;
  /** passwd: gid; group: unused. */
  gid: number;
  home: string;
}

function numericId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

function parseEntries(text: string, kind: 'passwd' | 'group'): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const f = t.split(':');
    const id = numericId(f[2] ?? '');
    if (!f[0] || id === undefined) continue;
    if (kind === 'passwd') {
      out.push({ name: f[0], id, gid: numericId(f[3] ?? '') ?? 0, home: f[5] ?? '' });
    } else {
      out.push({ name: f[0], id, gid: id, home: '' });
    }
  }
  return out;
}

/** Resolves `spec` (Config.User) against the image's passwd and group files (empty when absent). */
export function resolveImageUser(spec: string, passwd: string, group: string): ImageUserResult {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const userArg = colon < 0 ? s : s.slice(0, colon);
  const groupArg = colon < 0 ? '' : s.slice(colon + 1);

  const users = parseEntries(passwd, 'passwd');
  const uidArg = numericId(userArg);
  let user: ImageUser;
  if (userArg === '' || uidArg !== undefined) {
    const uid = uidArg ?? 0;
    const entry = users.find((u) => u.id === uid);
    user = entry
      ? { uid, gid: entry.gid, home: entry.home || '/' }
      : { uid, gid: 0, home: uid === 0 ? ROOT_HOME : '/' };
  } else {
    if (/^\d+$/.test(userArg)) return { error: `user ${userArg} is out of range` };
    const entry = users.find((u) => u.name === userArg);
    if (!entry) return { error: `unable to find user ${userArg}: no matching entries in passwd file` };
    user = { uid: entry.id, gid: entry.gid, home: entry.home || '/' };
  }

  if (groupArg !== '') {
    const gidArg = numericId(groupArg);
    const groups = parseEntries(group, 'group');
    const entry = groups.find((g) => (gidArg !== undefined ? g.id === gidArg : g.name === groupArg));
    if (entry) user.gid = entry.id;
    else if (gidArg !== undefined) user.gid = gidArg;
    else return { error: `unable to find group ${groupArg}: no matching entries in group file` };
  }
  return user;
}
