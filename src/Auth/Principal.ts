import { Context } from "effect"
import type { ApiKeyId, ProjectId, UserId } from "../Domain/Ids.ts"
import type { KeyRole, MemberRole } from "../Domain/Role.ts"

/** A caller holding an API key: its one project (or none, for a platform administrator) and one role. */
export interface ApiKeyPrincipal {
  readonly kind: "api_key"
  readonly keyId: ApiKeyId
  /** `null` only for platform administrators, who belong to no project. */
  readonly projectId: ProjectId | null
  readonly role: KeyRole
}

/** A logged-in user (access JWT): a role per project, read from the memberships on every request. */
export interface UserPrincipal {
  readonly kind: "user"
  readonly userId: UserId
  readonly email: string
  /** The refresh-token family (login session) the access token belongs to. */
  readonly sessionId: string
  readonly memberships: ReadonlyMap<ProjectId, MemberRole>
}

/** Who is calling: resolved once per request by the authentication middleware. */
export type Principal = ApiKeyPrincipal | UserPrincipal

export const isPlatformAdmin = (principal: Principal): boolean =>
  principal.kind === "api_key" && principal.role === "platform_admin"

/** The role the principal holds in `projectId`, if any (platform administrators hold none: they bypass). */
export const roleIn = (principal: Principal, projectId: ProjectId): MemberRole | undefined => {
  if (principal.kind === "user") return principal.memberships.get(projectId)
  if (principal.role === "platform_admin" || principal.projectId !== projectId) return undefined
  return principal.role
}

/** The projects a principal may see in listings; `null` means every project. */
export const visibleProjects = (principal: Principal): ReadonlyArray<ProjectId> | null => {
  if (principal.kind === "user") return [...principal.memberships.keys()]
  return principal.role === "platform_admin" ? null : principal.projectId === null ? [] : [principal.projectId]
}

/** How a principal is named in job events and the audit trail. */
export const actorName = (principal: Principal): string =>
  principal.kind === "api_key" ? `api_key:${principal.keyId}` : `user:${principal.userId}`

export class CurrentPrincipal extends Context.Service<CurrentPrincipal, Principal>()("foreman/CurrentPrincipal") {}
