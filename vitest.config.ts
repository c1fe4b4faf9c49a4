import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 240_000,
    maxWorkers: 3,
    fileParallelism: true,
    // CI machines are 2 shared cores running Spark, Postgres, Redis, three emulators and worker processes at
    // once: a test that fails on a timing fluke gets one more run there (a real failure fails twice).
    retry: process.env.CI ? 1 : 0,
  },
});
