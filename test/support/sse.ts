import { Effect } from "effect"
import { baseUrl } from "./TestApp.ts"

/** One block of a Server-Sent Events stream: an event (id/event/data) or a comment. */
export interface SseMessage {
  readonly id?: string
  readonly event?: string
  readonly data?: string
  readonly comment?: string
}

const parseBlock = (block: string): SseMessage => {
  const message: { id?: string; event?: string; data?: string; comment?: string } = {}
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) message.comment = line.slice(1).trim()
    else {
      const colon = line.indexOf(":")
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "id") message.id = value
      else if (field === "event") message.event = value
      else if (field === "data") message.data = message.data === undefined ? value : `${message.data}\n${value}`
    }
  }
  return message
}

export interface SseRead {
  readonly status: number
  readonly headers: Headers
  readonly messages: ReadonlyArray<SseMessage>
  /** Whether the server ended the stream (rather than the reader stopping or timing out). */
  readonly ended: boolean
  /** The body when the answer was not a stream (an error envelope). */
  readonly text: string
}

/**
 * Opens `path` as an event stream and reads until `until` holds for the
 * messages so far, the server ends the stream, or `timeoutMs` passes; then
 * drops the connection (as a client that goes away does).
 */
export const readSse = (
  path: string,
  options: {
    readonly token: string
    readonly headers?: Record<string, string>
    readonly until?: (messages: ReadonlyArray<SseMessage>) => boolean
    readonly timeoutMs?: number
    /** Called once the response headers have arrived. */
    readonly onOpen?: () => void
  }
) =>
  Effect.flatMap(baseUrl, (url) =>
    Effect.promise(async (): Promise<SseRead> => {
      const controller = new AbortController()
      const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 10_000)
      const messages: Array<SseMessage> = []
      let ended = false
      try {
        const response = await fetch(url + path, {
          headers: { authorization: `Bearer ${options.token}`, accept: "text/event-stream", ...options.headers },
          signal: controller.signal
        })
        if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream") || response.body === null) {
          return { status: response.status, headers: response.headers, messages, ended: true, text: await response.text() }
        }
        options.onOpen?.()
        const reader = response.body.getReader()
        const decoder = new TextDecoder()
        let buffer = ""
        try {
          while (options.until === undefined || !options.until(messages)) {
            const chunk = await reader.read()
            if (chunk.done) {
              ended = true
              break
            }
            buffer += decoder.decode(chunk.value, { stream: true })
            let end = buffer.indexOf("\n\n")
            while (end !== -1) {
              messages.push(parseBlock(buffer.slice(0, end)))
              buffer = buffer.slice(end + 2)
              end = buffer.indexOf("\n\n")
            }
          }
        } catch {
          // Aborted: the timeout passed.
        }
        return { status: response.status, headers: response.headers, messages, ended, text: "" }
      } finally {
        clearTimeout(timer)
        controller.abort()
      }
    }))

/** The events (not comments) of a read. */
export const sseEvents = (read: SseRead) => read.messages.filter((message) => message.data !== undefined)
