import { describe, expect, it } from 'vitest';
import {
  decodeJob,
  decodeJobQuickly,
  decodeJobWithSchemas,
  encodeJob,
  type Job,
  recordUid,
  ZERO_TIME,
} from '../../src/protocol/job.js';

function job(overrides: Partial<Job> = {}): Job {
  return {
    version: 2,
    id: 1,
    token: '',
    repositoryName: '',
    repositoryDirectory: '',
    commit: '',
    fetchTags: false,
    shallowClone: false,
    sparseCheckout: [],
    files: {},
    dockerSteps: [],
    cliSteps: [],
    redactedValues: {},
    dockerAuthConfig: {},
    ...overrides,
  };
}

/** A job with every field set. */
const fullJob = () =>
  job({
    id: 42,
    queue: 'batches',
    token: 'tok',
    repositoryName: 'github.com/a/b',
    repositoryDirectory: 'repository',
    commit: 'deadbeef',
    fetchTags: true,
    shallowClone: true,
    sparseCheckout: ['sub/*'],
    files: {
      'input.json': { content: Buffer.from('{"a":1}\n'), modifiedAt: ZERO_TIME },
      'ws/f.txt': { bucket: 'batch-changes', key: 'spec/file', modifiedAt: '2024-01-02T03:04:05Z' },
    },
    dockerSteps: [
      { key: 'indexer', image: 'img', commands: ['echo hi'], dir: '.', env: ['K=V'] },
      { image: 'img2', commands: [], dir: '', env: [] },
    ],
    cliSteps: [{ key: 'batch-exec', command: ['batch', 'exec'], dir: '.', env: [] }],
    redactedValues: { s3cret: '${{ secrets.S }}' },
    dockerAuthConfig: { auths: { 'reg:5000': { auth: Buffer.from('u:p').toString('base64') } } },
    attempt: 3,
  });

describe('Job payload', () => {
  it('encodes v2 with base64 content, zero modifiedAt and an empty dockerAuthConfig (Sourcegraph job_test.go)', () => {
    const body = encodeJob(
      job({ files: { 'script1.sh': { content: Buffer.from('hello'), modifiedAt: ZERO_TIME } } }),
      2,
    );
    expect(body.version).toBe(2);
    expect(body.files).toEqual({ 'script1.sh': { content: 'aGVsbG8=', modifiedAt: '0001-01-01T00:00:00Z' } });
    expect(body.dockerAuthConfig).toEqual({});
    expect(body.token).toBe('');
  });

  it('encodes v1 with plain content and no dockerAuthConfig', () => {
    const body = encodeJob(
      job({ files: { 'script1.sh': { content: Buffer.from('hello'), modifiedAt: ZERO_TIME } } }),
      1,
    );
    expect('version' in body).toBe(false);
    expect('dockerAuthConfig' in body).toBe(false);
    expect(body.files).toEqual({ 'script1.sh': { content: 'hello', modifiedAt: ZERO_TIME } });
  });

  it('writes nil collections as null, like the Go server', () => {
    const body = encodeJob(job({ id: 1, token: 'sometoken' }), 1);
    expect(JSON.parse(JSON.stringify(body))).toEqual({
      id: 1,
      token: 'sometoken',
      repositoryName: '',
      repositoryDirectory: '',
      commit: '',
      fetchTags: false,
      shallowClone: false,
      sparseCheckout: null,
      files: {},
      dockerSteps: null,
      cliSteps: null,
      redactedValues: null,
    });
  });

  it('round-trips v1 and v2', () => {
    const j = fullJob();
    for (const v of [1, 2] as const) {
      const back = decodeJob(JSON.parse(JSON.stringify(encodeJob(j, v))));
      expect(back.version).toBe(v);
      expect(back.files['input.json']!.content!.toString()).toBe('{"a":1}\n');
      expect(back.files['ws/f.txt']).toMatchObject({ bucket: 'batch-changes', key: 'spec/file' });
      expect(back.dockerSteps).toEqual(j.dockerSteps);
      expect(back.cliSteps[0]!.command).toEqual(['batch', 'exec']);
      expect(back.dockerAuthConfig).toEqual(v === 2 ? j.dockerAuthConfig : {});
      expect(back.queue).toBe('batches');
    }
  });

  it('decodes a bare {"id":42} with empty, non-null collections', () => {
    const j = decodeJob({ id: 42 });
    expect(j).toMatchObject({ id: 42, version: 1, files: {}, dockerSteps: [], cliSteps: [], token: '' });
  });

  it('refuses a v2 payload whose file content is not base64', () => {
    expect(() => decodeJob({ version: 2, id: 1, files: { a: { content: 'not base64!' } } })).toThrow();
  });

  it('refuses a v2 docker auth that is not base64, as Go does', () => {
    expect(() =>
      decodeJob({ version: 2, id: 1, dockerAuthConfig: { auths: { r: { auth: '%%%' } } } }),
    ).toThrow();
  });

  describe('the quick decoder agrees with the schemas', () => {
    const full = fullJob();
    const wire = (v: 1 | 2) => JSON.parse(JSON.stringify(encodeJob(full, v))) as Record<string, unknown>;
    // Well-formed payloads: the quick decoder takes them.
    const accepted: [string, unknown][] = [
      ['v1, every field', wire(1)],
      ['v2, every field', wire(2)],
      ['v2, nil collections', JSON.parse(JSON.stringify(encodeJob(job({ id: 7 }), 2)))],
      ['bare id', { id: 42 }],
      ['v1 with version 1', { ...wire(1), version: 1 }],
      ['extra keys', { ...wire(2), somethingNew: { a: 1 } }],
      ['step with extra keys', { ...wire(2), dockerSteps: [{ image: 'i', commands: ['x'], extra: 1 }] }],
      ['v2 empty auths', { ...wire(2), dockerAuthConfig: { auths: {} } }],
      ['v2 null auths', { ...wire(2), dockerAuthConfig: { auths: null } }],
      ['v2 null dockerAuthConfig', { ...wire(2), dockerAuthConfig: null }],
      ['v1 ignores dockerAuthConfig', { ...wire(1), dockerAuthConfig: { auths: { r: { auth: '%%%' } } } }],
      [
        'empty strings',
        { ...wire(2), queue: '', token: '', files: { f: { bucket: '', key: '', modifiedAt: '' } } },
      ],
    ];
    // Payloads the schemas refuse or that the quick decoder leaves to them.
    const refusedOrLeft: [string, unknown][] = [
      ['not an object', [1, 2]],
      ['null', null],
      ['no id', { token: 'x' }],
      ['fractional id', { id: 1.5 }],
      ['string id', { id: '1' }],
      ['version 3', { id: 1, version: 3 }],
      ['null token', { id: 1, token: null }],
      ['numeric commit', { id: 1, commit: 5 }],
      ['string fetchTags', { id: 1, fetchTags: 'yes' }],
      ['sparseCheckout of numbers', { id: 1, sparseCheckout: [1] }],
      ['v2 content not base64', { version: 2, id: 1, files: { a: { content: 'not base64!' } } }],
      ['v2 auth not base64', { version: 2, id: 1, dockerAuthConfig: { auths: { r: { auth: '%%%' } } } }],
      ['step not an object', { id: 1, dockerSteps: ['echo'] }],
      ['step commands not a list', { id: 1, dockerSteps: [{ image: 'i', commands: 'echo' }] }],
      ['cli step env of numbers', { id: 1, cliSteps: [{ command: ['a'], env: [1] }] }],
      ['redacted value not a string', { id: 1, redactedValues: { a: 1 } }],
      ['zero attempt', { id: 1, attempt: 0 }],
      ['files as a list', { id: 1, files: [] }],
      ['__proto__ file', JSON.parse('{"id":1,"files":{"__proto__":{"content":"x"}}}')],
    ];

    for (const [name, body] of accepted) {
      it(`takes and decodes alike: ${name}`, () => {
        const quick = decodeJobQuickly(body);
        expect(quick).toBeDefined();
        expect(quick).toEqual(decodeJobWithSchemas(body));
        expect(decodeJob(body)).toEqual(quick);
      });
    }
    for (const [name, body] of refusedOrLeft) {
      it(`leaves to the schemas, with their answer: ${name}`, () => {
        expect(decodeJobQuickly(body)).toBeUndefined();
        let schemas: unknown;
        try {
          schemas = decodeJobWithSchemas(body);
        } catch (e) {
          schemas = e;
        }
        if (schemas instanceof Error) expect(() => decodeJob(body)).toThrow(schemas.message);
        else expect(decodeJob(body)).toEqual(schemas);
      });
    }
  });

  it('names records with the queue when multi-queue', () => {
    expect(recordUid({ id: 42 })).toBe('42');
    expect(recordUid({ id: 42, queue: 'batches' })).toBe('42-batches');
  });
});
