/**
 * The `sql` tag of the PostgreSQL store's statements: the text a plain template literal gives, also
 * when a call site's values change between calls (the tag keeps one text per call site; that it
 * saves time is the queue benchmark's to show, as strings have no identity to test).
 */
import { describe, expect, it } from 'vitest';
import { at, sql } from '../../src/store/postgres/fragments.js';

const statement = (n: number, column: string) =>
  sql`SELECT ${column} FROM jobs WHERE id = $1 AND t <= ${at(n)}`;
const plain = (n: number, column: string) => `SELECT ${column} FROM jobs WHERE id = $1 AND t <= ${at(n)}`;

describe('sql tag', () => {
  it('gives the text a template literal gives', () => {
    expect(statement(2, 'id')).toBe(plain(2, 'id'));
    expect(sql`a\n${'b'}\t${3}c`).toBe(`a\n${'b'}\t${3}c`);
    expect(sql`no values`).toBe('no values');
  });

  it('rebuilds the text when a value changes, and never returns a stale one', () => {
    expect(statement(2, 'id')).toContain('$2::bigint');
    expect(statement(3, 'id')).toContain('$3::bigint');
    expect(statement(3, 'queue')).toBe(plain(3, 'queue'));
    expect(statement(2, 'id')).toBe(plain(2, 'id'));
  });
});
