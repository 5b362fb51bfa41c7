/**
 * `npm run test:chaos`: the reliability suite — the full sftp → s3 SIGKILL loop (2,000 files,
 * 30 kills unless SLUICE_CHAOS_FILES / SLUICE_CHAOS_KILLS say otherwise), the connector fault
 * runs, the bad-input corpus, secrets, and the local and cluster crash tests.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/chaos/**/*.test.ts',
      'test/e2e/faults-*.test.ts',
      'test/e2e/bad-input-*.test.ts',
      'test/e2e/secrets.test.ts',
      'test/e2e/crash-recovery.test.ts',
      'test/e2e/cluster-kill.test.ts',
      'test/e2e/ledger-source-change.test.ts',
    ],
    env: {
      SLUICE_CHAOS_FILES: process.env.SLUICE_CHAOS_FILES ?? '2000',
      SLUICE_CHAOS_KILLS: process.env.SLUICE_CHAOS_KILLS ?? '30',
    },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
