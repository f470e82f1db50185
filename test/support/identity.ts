import { generateJwk } from "../../src/Auth/Secrets.ts"

/** The pepper every test server (in-process and spawned) is started with. */
export const testPepper = "test-pepper-0123456789abcdefghijklmnopqrstuvwxyz"

/** One signing key per test process; spawned services get the same JSON through FOREMAN_JWT_KEYS. */
export const testJwk = generateJwk("test-key-1")
export const testJwtKeys = JSON.stringify([testJwk])

/** The environment a spawned `node src/main.ts` with DATABASE_URL needs for the identity secrets. */
export const identityEnv: Readonly<Record<string, string>> = {
  FOREMAN_PASSWORD_PEPPER: testPepper,
  FOREMAN_JWT_KEYS: testJwtKeys
}
