import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: two forks keep PostgreSQL and the test workers from starving each other.
    pool: "forks",
    maxWorkers: 2
  }
})
