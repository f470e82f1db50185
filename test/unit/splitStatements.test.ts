import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import path from "node:path"
import { migrationsDir } from "../../src/Sql/Migrator.ts"
import { splitStatements } from "../../src/Sql/SplitStatements.ts"

describe("splitStatements", () => {
  it("empty and blank input yield no statements", () => {
    assert.deepStrictEqual(splitStatements(""), [])
    assert.deepStrictEqual(splitStatements("   \n\t "), [])
    assert.deepStrictEqual(splitStatements(";;\n;"), [])
  })

  it("input of only comments yields no statements", () => {
    assert.deepStrictEqual(splitStatements("-- nothing here; really\n/* nor; here */\n"), [])
  })

  it("splits on semicolons and trims each statement", () => {
    assert.deepStrictEqual(splitStatements("SELECT 1;\n  SELECT 2 ;SELECT 3;"), ["SELECT 1", "SELECT 2", "SELECT 3"])
  })

  it("keeps a trailing statement without a semicolon", () => {
    assert.deepStrictEqual(splitStatements("SELECT 1; SELECT 2"), ["SELECT 1", "SELECT 2"])
  })

  it("drops a trailing chunk that is only a comment", () => {
    assert.deepStrictEqual(splitStatements("SELECT 1; -- done\n"), ["SELECT 1"])
  })

  it("does not split on semicolons inside single-quoted strings, including doubled quotes", () => {
    assert.deepStrictEqual(
      splitStatements("INSERT INTO t VALUES ('a;b'); SELECT 'it''s; fine'; SELECT 3"),
      ["INSERT INTO t VALUES ('a;b')", "SELECT 'it''s; fine'", "SELECT 3"]
    )
  })

  it("does not split on semicolons inside double-quoted identifiers", () => {
    assert.deepStrictEqual(
      splitStatements("CREATE TABLE \"odd;name\" (x int); SELECT 2"),
      ["CREATE TABLE \"odd;name\" (x int)", "SELECT 2"]
    )
  })

  it("does not split inside a $$ dollar-quoted body", () => {
    const fn = "CREATE FUNCTION f() RETURNS int AS $$ BEGIN PERFORM 1; RETURN 1; END; $$ LANGUAGE plpgsql"
    assert.deepStrictEqual(splitStatements(`${fn}; SELECT f()`), [fn, "SELECT f()"])
  })

  it("does not split inside a $tag$ body, even if it contains $$ or a quote", () => {
    const fn =
      "CREATE FUNCTION g() RETURNS text AS $body$ BEGIN RETURN '$$;'; END; $body$ LANGUAGE plpgsql"
    assert.deepStrictEqual(splitStatements(`${fn};\nSELECT g();`), [fn, "SELECT g()"])
  })

  it("accepts digits in a dollar-quote tag, as PostgreSQL does ($fn_1$)", () => {
    // PostgreSQL: the tag "follows the same rules as an unquoted identifier, except
    // that it cannot contain a dollar sign" — so digits after the first character are valid.
    const fn = "CREATE FUNCTION h() RETURNS int AS $fn_1$ BEGIN RETURN 1; END; $fn_1$ LANGUAGE plpgsql"
    assert.deepStrictEqual(splitStatements(`${fn}; SELECT h()`), [fn, "SELECT h()"])
  })

  it("does not treat positional parameters ($1) as dollar quotes", () => {
    assert.deepStrictEqual(
      splitStatements("PREPARE p AS SELECT $1; SELECT 2"),
      ["PREPARE p AS SELECT $1", "SELECT 2"]
    )
  })

  it("does not split on semicolons inside line or block comments", () => {
    assert.deepStrictEqual(
      splitStatements("-- first; still comment\nSELECT 1; /* a; b */ SELECT 2; SELECT 3 -- tail; comment"),
      ["-- first; still comment\nSELECT 1", "/* a; b */ SELECT 2", "SELECT 3 -- tail; comment"]
    )
  })

  it("block comments nest, as they do in PostgreSQL", () => {
    assert.deepStrictEqual(
      splitStatements("/* outer /* inner */ still; comment */ SELECT 1; SELECT 2"),
      ["/* outer /* inner */ still; comment */ SELECT 1", "SELECT 2"]
    )
  })

  it("a quote inside a comment does not open a string", () => {
    assert.deepStrictEqual(
      splitStatements("-- don't\nSELECT 1; /* it's */ SELECT 2"),
      ["-- don't\nSELECT 1", "/* it's */ SELECT 2"]
    )
  })

  it("splits a migration-shaped script, keeping leading comments with their statement", () => {
    const script = [
      "-- header; comment",
      "CREATE TABLE a (id int CHECK (id IN (1, 2)));",
      "CREATE INDEX a_id ON a (id);",
      "COMMENT ON TABLE a IS 'semi; colon';"
    ].join("\n")
    assert.deepStrictEqual(splitStatements(script), [
      "-- header; comment\nCREATE TABLE a (id int CHECK (id IN (1, 2)))",
      "CREATE INDEX a_id ON a (id)",
      "COMMENT ON TABLE a IS 'semi; colon'"
    ])
  })

  it("splits the real foundation migration into one statement per CREATE", () => {
    const script = readFileSync(path.join(migrationsDir, "0001_foundation.up.sql"), "utf8")
    const statements = splitStatements(script)
    const creates = script.match(/^CREATE /gm) ?? []
    assert.isAbove(creates.length, 0)
    assert.strictEqual(statements.length, creates.length)
    for (const statement of statements) {
      const code = statement.replace(/--[^\n]*\n/g, "").trim()
      assert.match(code, /^CREATE (TABLE|INDEX|UNIQUE INDEX) /)
      assert.notInclude(code, ";")
    }
  })
})
