/**
 * A log entry's command is stored as a JSON array of strings (SQLite: its text; PostgreSQL: a
 * TEXT[] read back as `array_to_json(...)::text`). Views read only the first N characters of that
 * text, so that a command of megabytes is never loaded; this turns such a prefix back into argv:
 * every complete element, then the cut element's readable start (when it has one).
 */

/** The elements a JSON array-of-strings prefix holds; the last one may be cut short. */
export function decodeCommandPrefix(prefix: string): string[] {
  const out: string[] = [];
  let i = prefix.indexOf('[');
  if (i < 0) return out;
  i++;
  while (i < prefix.length) {
    const open = prefix.indexOf('"', i);
    if (open < 0) break;
    let j = open + 1;
    let closed = false;
    while (j < prefix.length) {
      const ch = prefix[j];
      if (ch === '\\') {
        j += 2;
        continue;
      }
      if (ch === '"') {
        closed = true;
        break;
      }
      j++;
    }
    if (closed) {
      out.push(JSON.parse(prefix.slice(open, j + 1)) as string);
      i = j + 1;
      continue;
    }
    const partial = readablePart(prefix.slice(open + 1));
    if (partial !== '') out.push(partial);
    break;
  }
  return out;
}

/** The decoded start of a JSON string body cut anywhere (a cut escape sequence is dropped). */
function readablePart(body: string): string {
  // An escape is at most 6 characters (\uXXXX); try dropping up to that many from the end.
  for (let drop = 0; drop <= 6 && drop <= body.length; drop++) {
    try {
      return JSON.parse(`"${body.slice(0, body.length - drop)}"`) as string;
    } catch {
      // A cut escape sequence (or a lone backslash): drop one more character.
    }
  }
  return '';
}
