/**
 * Code-unit order of two strings: the same for every locale and machine, so that lists a program
 * prints (metrics, API answers) come out identically wherever it runs. Sort comparators only.
 */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
