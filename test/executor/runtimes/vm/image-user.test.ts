/**
 * The image's USER resolved as Docker's runtime (runc's GetExecUser) resolves it, against the
 * image's own passwd and group files.
 */
import { describe, expect, it } from 'vitest';
import { resolveImageUser } from '../../../../src/executor/runtimes/vm/image-user.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'nohome:x:1001:1001::',
  'broken line',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'wheel:x:10:root,app', 'app:x:1000:', 'builders:x:2000:app', ''].join('\n');

describe('resolveImageUser', () => {
  it('no USER: root with its home', () => {
    expect(resolveImageUser('', PASSWD, GROUP)).toEqual({ uid: 0, gid: 0, home: '/root' });
    expect(resolveImageUser('', '', '')).toEqual({ uid: 0, gid: 0, home: '/root' });
  });

  it('a name: its uid, primary gid and home from passwd', () => {
    expect(resolveImageUser('app', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, home: '/home/app' });
    expect(resolveImageUser('daemon', PASSWD, GROUP)).toEqual({ uid: 1, gid: 1, home: '/usr/sbin' });
    expect(resolveImageUser('nohome', PASSWD, GROUP)).toEqual({ uid: 1001, gid: 1001, home: '/' });
  });

  it('a number is a uid: its entry when there is one, else gid 0 and home /', () => {
    expect(resolveImageUser('1000', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, home: '/home/app' });
    expect(resolveImageUser('4242', PASSWD, GROUP)).toEqual({ uid: 4242, gid: 0, home: '/' });
    expect(resolveImageUser('4242', '', '')).toEqual({ uid: 4242, gid: 0, home: '/' });
  });

  it('user:group takes the group by name or gid; an unknown numeric gid as is', () => {
    expect(resolveImageUser('app:builders', PASSWD, GROUP)).toEqual({
      uid: 1000,
      gid: 2000,
      home: '/home/app',
    });
    expect(resolveImageUser('app:10', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 10, home: '/home/app' });
    expect(resolveImageUser('4242:4343', PASSWD, GROUP)).toEqual({ uid: 4242, gid: 4343, home: '/' });
    expect(resolveImageUser('app:', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, home: '/home/app' });
  });

  it("refuses what Docker refuses, with Docker's words", () => {
    expect(resolveImageUser('ghost', PASSWD, GROUP)).toEqual({
      error: 'unable to find user ghost: no matching entries in passwd file',
    });
    expect(resolveImageUser('app:ghosts', PASSWD, GROUP)).toEqual({
      error: 'unable to find group ghosts: no matching entries in group file',
    });
    expect(resolveImageUser('99999999999', PASSWD, GROUP)).toEqual({
      error: 'user 99999999999 is out of range',
    });
  });
});
