import { Context, Effect, Layer } from "effect"
import path from "node:path"
import { pathToFileURL } from "node:url"
import { AppConfig } from "../Config/AppConfig.ts"
import type { ClaimedJob } from "./EngineRepo.ts"
import { type Handler, HandlerFailure } from "./Handler.ts"
import { makeHttpHandler } from "./HttpKind.ts"
import { makeWebhookHandler } from "../Webhooks/Delivery.ts"

/** What a handler module's function receives besides the payload. */
export interface ModuleContext {
  readonly job: ClaimedJob
  /** Aborted when the attempt times out, is cancelled, or the instance shuts down. */
  readonly signal: AbortSignal
}

/**
 * A handler module exports `handlers` (or a default export): an object from
 * kind to `(payload, context) => result | Promise<result>`. A thrown error fails
 * the attempt; an error with `retryable: false` sends the job to `dead`.
 */
export type ModuleHandler = (payload: unknown, context: ModuleContext) => unknown

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null
const isModuleHandler = (u: unknown): u is ModuleHandler => typeof u === "function"

export class HandlerModuleError extends Error {}

const moduleFailure = (error: unknown) =>
  new HandlerFailure({
    message: error instanceof Error ? error.message : String(error),
    retryable: !(isRecord(error) && error.retryable === false)
  })

const isPromiseLike = (u: unknown): u is PromiseLike<unknown> => isRecord(u) && typeof u.then === "function"

/**
 * Calls the module's function in the attempt's fiber. A plain return value
 * completes the attempt at once; a promise is awaited, and interrupting the
 * attempt aborts `signal`. The AbortController is made when the handler first
 * reads `signal`: a synchronous no-op handler in a drain spent about a fifth of
 * its per-attempt CPU on the controller and the promise around it.
 */
export const fromModule = (fn: ModuleHandler): Handler => (job) =>
  Effect.suspend(() => {
    let controller: AbortController | undefined
    const context: ModuleContext = {
      job,
      get signal() {
        controller ??= new AbortController()
        return controller.signal
      }
    }
    let returned: unknown
    try {
      returned = fn(job.payload, context)
    } catch (error) {
      return Effect.fail(moduleFailure(error))
    }
    if (!isPromiseLike(returned)) return Effect.succeed(returned)
    return Effect.callback<unknown, HandlerFailure>((resume) => {
      returned.then(
        (value) => resume(Effect.succeed(value)),
        (error: unknown) => resume(Effect.fail(moduleFailure(error)))
      )
      return Effect.sync(() => controller?.abort())
    })
  })

const loadModule = (specifier: string) =>
  Effect.tryPromise({
    try: async () => {
      const url = specifier.startsWith(".") || path.isAbsolute(specifier)
        ? pathToFileURL(path.resolve(specifier)).href
        : specifier
      const module: unknown = await import(url)
      const exported = isRecord(module) ? (module.handlers ?? module.default) : undefined
      if (!isRecord(exported)) throw new HandlerModuleError(`${specifier} exports no 'handlers' object`)
      const entries: Array<readonly [string, Handler]> = []
      for (const [kind, fn] of Object.entries(exported)) {
        if (!isModuleHandler(fn)) throw new HandlerModuleError(`${specifier}: handler '${kind}' is not a function`)
        entries.push([kind, fromModule(fn)])
      }
      return entries
    },
    catch: (cause) => new HandlerModuleError(`cannot load handler module ${specifier}: ${String(cause)}`)
  })

/** Every kind this instance can run in-process: the built-in `http` plus `FOREMAN_HANDLERS` modules. */
export class Handlers extends Context.Service<Handlers, {
  readonly get: (kind: string) => Handler | undefined
  readonly kinds: ReadonlyArray<string>
}>()("foreman/Handlers") {
  static readonly layer = Layer.effect(
    Handlers,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const registry = new Map<string, Handler>([
        ["http", makeHttpHandler({
          allowCidrs: config.httpAllowCidrs,
          connectTimeoutMs: 5000,
          maxResponseBytes: 1024 * 1024,
          storedBodyBytes: 4096
        })]
      ])
      // Deliveries of the project's signed webhooks (src/Webhooks), from the `_webhooks` queues.
      const webhook = yield* makeWebhookHandler
      if (webhook !== undefined) registry.set("webhook", webhook)
      // An API-only instance runs no jobs, so a broken module must not stop it.
      const modules = config.role === "api" ? [] : config.handlerModules
      for (const specifier of modules) {
        for (const [kind, handler] of yield* Effect.orDie(loadModule(specifier))) registry.set(kind, handler)
      }
      yield* Effect.logInfo("in-process handlers loaded").pipe(Effect.annotateLogs({ kinds: [...registry.keys()] }))
      return Handlers.of({ get: (kind) => registry.get(kind), kinds: [...registry.keys()] })
    })
  )

  /** Handlers given directly, for tests. */
  static readonly layerWith = (handlers: Record<string, Handler>) =>
    Layer.succeed(Handlers, Handlers.of({ get: (kind) => handlers[kind], kinds: Object.keys(handlers) }))
}
