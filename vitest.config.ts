import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], environment: 'node' },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          // One API server and one PostgreSQL are shared: files run one at a time, each with its
          // own Steward process, so two operators never reconcile the same objects.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // `make demo`, end to end. Run on its own, after the integration tests (see the Makefile).
        test: { name: 'demo', include: ['test/demo/**/*.test.ts'], environment: 'node', testTimeout: 600_000, hookTimeout: 60_000 },
      },
    ],
  },
});
