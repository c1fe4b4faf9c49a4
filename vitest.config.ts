import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 240_000,
    maxWorkers: 3,
    fileParallelism: true,
  },
});
