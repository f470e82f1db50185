import { Context } from "effect"
import type { ApiKeyId, ProjectId } from "../Domain/Ids.ts"
import type { KeyRole } from "../Domain/Role.ts"

/** Who is calling: resolved once per request by the authentication middleware. */
export interface Principal {
  readonly kind: "api_key"
  readonly keyId: ApiKeyId
  /** `null` only for platform administrators, who belong to no project. */
  readonly projectId: ProjectId | null
  readonly role: KeyRole
}

export class CurrentPrincipal extends Context.Service<CurrentPrincipal, Principal>()("foreman/CurrentPrincipal") {}
