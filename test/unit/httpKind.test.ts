import { assert, describe, it } from "@effect/vitest"
import { makeAddressGuard } from "../../src/Engine/HttpKind.ts"

describe("makeAddressGuard", () => {
  const guard = makeAddressGuard([])

  const refused = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::FFFF:10.0.0.1",
    // The WHATWG URL parser rewrites [::ffff:127.0.0.1] to this hex form.
    "::ffff:7f00:1",
    "::ffff:a9fe:a9fe"
  ]
  for (const address of refused) {
    it(`refuses ${address}`, () => {
      assert.isFalse(guard(address), `${address} must be refused`)
    })
  }

  const allowed = ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "192.169.0.1", "2001:4860::8888", "::ffff:8.8.8.8"]
  for (const address of allowed) {
    it(`allows ${address}`, () => {
      assert.isTrue(guard(address), `${address} must be allowed`)
    })
  }

  it("an allow-list CIDR lets exactly its range through", () => {
    const loopbackAllowed = makeAddressGuard(["127.0.0.0/8"])
    assert.isTrue(loopbackAllowed("127.0.0.1"))
    assert.isTrue(loopbackAllowed("127.1.2.3"))
    assert.isTrue(loopbackAllowed("::ffff:127.0.0.1"), "the mapped form of an allowed address is allowed")
    assert.isFalse(loopbackAllowed("10.0.0.1"), "other private ranges stay refused")
    assert.isFalse(loopbackAllowed("169.254.169.254"))
    assert.isFalse(loopbackAllowed("::1"), "an IPv4 allow-list does not open IPv6 loopback")
    assert.isTrue(loopbackAllowed("8.8.8.8"))
  })

  it("an allow-list entry without a prefix is a single address", () => {
    const single = makeAddressGuard(["10.1.2.3", "fd00::5"])
    assert.isTrue(single("10.1.2.3"))
    assert.isFalse(single("10.1.2.4"))
    assert.isTrue(single("fd00::5"))
    assert.isFalse(single("fd00::6"))
  })
})
