import { describe, expect, it } from 'vitest';
import { parseCapabilities } from '../../src/protocol/capabilities.js';
import { decodeHeartbeatResponse, heartbeatRequestSchema } from '../../src/protocol/http.js';
import { JobIdsParseError, parseJobIds, splitRecordUid } from '../../src/protocol/job-id.js';

describe('heartbeat ids', () => {
  it('accepts job ids as strings, numbers or a mix (http_test.go)', () => {
    const r = heartbeatRequestSchema.parse({ executorName: 'e', jobIds: [42, 72, '12'] });
    expect(r.jobIds).toEqual(['42', '72', '12']);
  });

  it('treats null jobIds as none', () => {
    expect(heartbeatRequestSchema.parse({ executorName: 'e', jobIds: null }).jobIds).toEqual([]);
  });

  it('decodes jobIdsByQueue with queueNames', () => {
    const r = heartbeatRequestSchema.parse({
      executorName: 'e',
      queueNames: ['a', 'b'],
      jobIdsByQueue: [{ queueName: 'a', jobIds: ['1', 2] }],
    });
    expect(r.jobIdsByQueue).toEqual([{ queueName: 'a', jobIds: ['1', '2'] }]);
  });

  it('reads both knownIds and knownIDs spellings, numbers and null', () => {
    expect(decodeHeartbeatResponse({ knownIDs: ['1'], cancelIDs: ['1'] })).toEqual({
      knownIds: ['1'],
      cancelIds: ['1'],
    });
    expect(decodeHeartbeatResponse({ knownIds: [1, 2], cancelIds: null })).toEqual({
      knownIds: ['1', '2'],
      cancelIds: [],
    });
    expect(() => decodeHeartbeatResponse({ knownIds: [{}] })).toThrow();
  });
});

describe('parseJobIds (Test_parseJobIDs)', () => {
  it('groups by queue, sorted by queue name, ids in input order', () => {
    expect(parseJobIds(['1-foo', '2-foo', '3-bar', '44-foo'])).toEqual([
      { queueName: 'bar', jobIds: ['3'] },
      { queueName: 'foo', jobIds: ['1', '2', '44'] },
    ]);
  });

  it('lists every malformed id; "2--bar" is id 2 of queue "-bar"', () => {
    let err: unknown;
    try {
      parseJobIds(['1+foo', '2--bar', '3baz']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JobIdsParseError);
    expect((err as Error).message).toBe('failed to parse one or more unexpected job ID formats: 1+foo, 3baz');
    expect(parseJobIds(['2--bar'])).toEqual([{ queueName: '-bar', jobIds: ['2'] }]);
  });

  it('splits record uids', () => {
    expect(splitRecordUid('42-batches')).toEqual({ id: 42, queue: 'batches' });
    expect(splitRecordUid('7')).toEqual({ id: 7 });
  });
});

describe('capabilities header', () => {
  it('parses a comma list and tolerates absence', () => {
    expect([...parseCapabilities('long-poll, log-append')]).toEqual(['long-poll', 'log-append']);
    expect(parseCapabilities(null).size).toBe(0);
  });
});
