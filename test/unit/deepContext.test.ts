import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { requestContextDepth, withDeepContext } from "../../src/Http/DeepContext.ts"

// Context copies itself with `new Map(...)`: counting Map constructions while a request-like effect
// adds services to its context shows whether the additions stayed overlays or copied the context.
let counting = false
let constructed = 0
class CountingMap<K, V> extends Map<K, V> {
  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super(entries)
    if (counting) constructed++
  }
}

const reference = (name: string) => Context.Reference<number>(`test/DeepContext/${name}`, { defaultValue: () => -1 })
const first = reference("application-0")

// An application-sized context: 40 services.
const application = Array.from({ length: 39 }, (_, i) => reference(`application-${i + 1}`)).reduce<Context.Context<never>>(
  (context, ref, i) => Context.add(context, ref, i + 1),
  Context.make(first, 0)
)

// 20 nested additions, as a request's spans, annotations and metrics make, then a lookup in the application context.
const request = Array.from({ length: 20 }, (_, i) => reference(`request-${i}`)).reduce<Effect.Effect<number>>(
  (effect, ref, i) => Effect.provideService(effect, ref, i),
  Effect.gen(function*() {
    return yield* first
  })
)

/** Map constructions while `request` runs inside a layer, with the application context provided. */
const copiesIn = (wrap: (layer: Layer.Layer<never>) => Layer.Layer<never>) => {
  let result: { readonly copies: number; readonly value: number } | undefined
  const layer = wrap(Layer.effectDiscard(Effect.gen(function*() {
    const originalMap = globalThis.Map
    globalThis.Map = CountingMap
    counting = true
    constructed = 0
    const value = yield* request.pipe(Effect.ensuring(Effect.sync(() => {
      counting = false
      globalThis.Map = originalMap
    })))
    result = { copies: constructed, value }
  }))).pipe(Layer.provide(Layer.succeedContext(application)))
  Effect.runSync(Effect.scoped(Layer.build(layer)))
  if (result === undefined) throw new Error("the layer did not run")
  return result
}

describe("withDeepContext", () => {
  it("keeps a request's additions as overlays instead of copying the application context", () => {
    const plain = copiesIn((layer) => layer)
    const deep = copiesIn(withDeepContext)
    // Both see the application's services.
    assert.strictEqual(plain.value, 0)
    assert.strictEqual(deep.value, 0)
    // Context's default keeps 8 overlays: 20 additions copy the 40-service context twice.
    assert.isAtLeast(plain.copies, 2)
    assert.isBelow(20, requestContextDepth)
    assert.strictEqual(deep.copies, 0)
  })
})
