import { describe, expect, it } from 'vitest';
import { decodeCommandPrefix } from '../../src/store/command-prefix.js';

describe('decodeCommandPrefix', () => {
  const argv = ['sh', '-c', 'echo "a\\tb" \u00e9\u{1F600} \\\\ done', 'last'];
  const json = JSON.stringify(argv);

  it('decodes a whole array', () => {
    expect(decodeCommandPrefix(json)).toEqual(argv);
    expect(decodeCommandPrefix('[]')).toEqual([]);
    expect(decodeCommandPrefix('["a", "b"]')).toEqual(['a', 'b']);
  });

  it('gives complete elements and the readable start of the cut one, at every cut', () => {
    for (let n = 0; n <= json.length; n++) {
      const got = decodeCommandPrefix(json.slice(0, n));
      expect(got.length).toBeLessThanOrEqual(argv.length);
      got.forEach((el, i) => {
        if (i < got.length - 1) expect(el).toBe(argv[i]);
        else expect(argv[i]!.startsWith(el)).toBe(true);
      });
    }
  });
});
