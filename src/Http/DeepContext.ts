import { Context, Effect, Layer } from "effect"

/** How many additions a request fiber's context keeps as overlays before it copies itself. */
export const requestContextDepth = 32

/**
 * Builds `layer` in a context that keeps up to `requestContextDepth` additions
 * as overlays before it copies itself into a flat map (Context's default is 8).
 * Request fibers inherit the context the server was started in, and each
 * request adds a dozen services to it (span, stack frame, log annotations,
 * metric attributes, route context). Past the limit every addition copied the
 * whole application context, some 60 services: five copies per request, a
 * quarter of the single-enqueue allocations. Lookups walk the overlays, which
 * stay short.
 */
export const withDeepContext = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.fromBuild((memoMap, scope) =>
    Effect.updateContext(
      Layer.buildWithMemoMap(layer, memoMap, scope),
      (context: Context.Context<never>) => Context.makeUnsafe(context.mapUnsafe, { maxDepth: requestContextDepth })
    )
  )
