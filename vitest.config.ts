import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Hang detectors, not speed claims: on a loaded 2-core machine a test that starts containers,
    // gVisor sandboxes, clusters or CLI processes takes several times its idle duration, and the
    // end-to-end tests' own waits (waitForEnd: 90 s) must be able to run out before these do, so a
    // failure names what it waited for. A bound that is the point of a test is asserted in the test.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
