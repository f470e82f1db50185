/** The part of autocannon 9's programmatic API the load generator uses (the package ships no types). */
declare module "autocannon" {
  import type { EventEmitter } from "node:events"

  interface Options {
    readonly url: string
    readonly method?: "GET" | "POST"
    readonly headers?: Readonly<Record<string, string>>
    readonly body?: string
    readonly connections?: number
    readonly pipelining?: number
    readonly duration?: number
    readonly timeout?: number
  }

  interface Result {
    readonly requests: { readonly average: number; readonly total: number }
    readonly duration: number
    readonly errors: number
    readonly timeouts: number
    readonly non2xx: number
    readonly "2xx": number
  }

  interface Instance extends EventEmitter, PromiseLike<Result> {
    on(event: "response", listener: (client: unknown, statusCode: number, bytes: number, ms: number) => void): this
    on(event: string, listener: (...args: Array<unknown>) => void): this
  }

  function autocannon(options: Options): Instance
  export default autocannon
}
