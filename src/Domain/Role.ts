import { Schema } from "effect"

/** Roles a project-scoped API key can carry. */
export const ProjectRole = Schema.Literals(["admin", "producer", "worker", "reviewer", "viewer"])
export type ProjectRole = typeof ProjectRole.Type

/** Every role a key can carry, including the project-less platform administrator. */
export const KeyRole = Schema.Literals(["platform_admin", "admin", "producer", "worker", "reviewer", "viewer"])
export type KeyRole = typeof KeyRole.Type
