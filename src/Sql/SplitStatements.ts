/**
 * Splits a SQL script into statements. @effect/sql-pg speaks only the extended
 * query protocol, which refuses several statements in one message, so
 * migration files are sent one statement at a time. Quotes, dollar-quoted
 * bodies and comments are respected, so a `;` inside them does not split.
 */
export const splitStatements = (script: string): Array<string> => {
  const statements: Array<string> = []
  let start = 0
  let i = 0
  // Whether the current statement has anything but comments and white space.
  let hasCode = false
  const push = (end: number) => {
    if (hasCode) statements.push(script.slice(start, end).trim())
    hasCode = false
  }
  while (i < script.length) {
    const ch = script[i]
    const next = script[i + 1]
    if (ch !== undefined && ch !== ";" && !/\s/.test(ch) && !(ch === "-" && next === "-") && !(ch === "/" && next === "*")) {
      hasCode = true
    }
    if (ch === "-" && next === "-") {
      const eol = script.indexOf("\n", i)
      i = eol === -1 ? script.length : eol + 1
    } else if (ch === "/" && next === "*") {
      // PostgreSQL block comments nest.
      let depth = 1
      i += 2
      while (i < script.length && depth > 0) {
        if (script[i] === "/" && script[i + 1] === "*") {
          depth++
          i += 2
        } else if (script[i] === "*" && script[i + 1] === "/") {
          depth--
          i += 2
        } else i++
      }
    } else if (ch === "'" || ch === "\"") {
      // E'...' strings allow backslash escapes, so \' does not end them.
      const escapes = ch === "'" && (script[i - 1] === "E" || script[i - 1] === "e")
      let j = i + 1
      while (j < script.length) {
        if (escapes && script[j] === "\\") j += 2
        else if (script[j] === ch) {
          if (script[j + 1] === ch) j += 2
          else break
        } else j++
      }
      i = j + 1
    } else if (ch === "$") {
      const match = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i))
      if (match) {
        const tag = match[0]
        const end = script.indexOf(tag, i + tag.length)
        i = end === -1 ? script.length : end + tag.length
      } else i++
    } else if (ch === ";") {
      push(i)
      start = i + 1
      i++
    } else i++
  }
  push(script.length)
  return statements
}
