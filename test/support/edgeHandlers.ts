/**
 * Handlers whose results or failures are awkward for the engine to store
 * (loaded next to handlers.ts through FOREMAN_HANDLERS in engine tests).
 */
export const handlers = {
  /** A result JSON cannot represent. */
  bigint: () => ({ n: 10n }),
  /** A result that refers to itself. */
  circular: () => {
    const value: { self?: unknown } = {}
    value.self = value
    return value
  }
}
