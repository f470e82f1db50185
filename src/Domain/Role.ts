import { Schema } from "effect"

/** Roles a project-scoped API key can carry. */
export const ProjectRole = Schema.Literals(["admin", "producer", "worker", "reviewer", "viewer"])
export type ProjectRole = typeof ProjectRole.Type

/** Every role a key can carry, including the project-less platform administrator. */
export const KeyRole = Schema.Literals(["platform_admin", "admin", "producer", "worker", "reviewer", "viewer"])
export type KeyRole = typeof KeyRole.Type

/** Roles a user can hold in a project through a membership: every key role plus `owner` (owner ⊇ admin). */
export const MemberRole = Schema.Literals(["owner", "admin", "producer", "worker", "reviewer", "viewer"])
export type MemberRole = typeof MemberRole.Type
