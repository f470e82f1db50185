import { Schema } from "effect"
import { v7 as uuidv7 } from "uuid"

const Uuid = Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" }))

export const ProjectId = Uuid.pipe(Schema.brand("ProjectId"))
export type ProjectId = typeof ProjectId.Type

export const ApiKeyId = Uuid.pipe(Schema.brand("ApiKeyId"))
export type ApiKeyId = typeof ApiKeyId.Type

export const QueueId = Uuid.pipe(Schema.brand("QueueId"))
export type QueueId = typeof QueueId.Type

export const JobId = Uuid.pipe(Schema.brand("JobId"))
export type JobId = typeof JobId.Type

/** The queue the service delivers webhooks through, one per project, created on demand. */
export const webhooksQueue = "_webhooks"

const queueNameMessage = "must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"

/**
 * Lower-case slug used to address a queue inside its project; immutable once created.
 * The service's own queues (`_webhooks`) start with `_` and can be read and tuned but
 * not created or enqueued to through the API (see `UserQueueName`).
 */
export const QueueName = Schema.String.check(
  Schema.makeFilter((name: string) => /^[a-z0-9][a-z0-9_.-]{0,63}$/.test(name) || name === webhooksQueue || queueNameMessage)
).pipe(Schema.brand("QueueName"))
export type QueueName = typeof QueueName.Type

/** A queue name a client may create or enqueue to: never a reserved `_` name. */
export const UserQueueName = QueueName.check(
  Schema.isPattern(/^[a-z0-9]/, { message: queueNameMessage })
)

/**
 * Time-ordered UUIDs (v7): ids sort by creation time, so cursor pagination and
 * the primary-key index follow insertion order without a separate sequence.
 */
export const newId = (): string => uuidv7()

export const WorkerId = Uuid.pipe(Schema.brand("WorkerId"))
export type WorkerId = typeof WorkerId.Type

export const UserId = Uuid.pipe(Schema.brand("UserId"))
export type UserId = typeof UserId.Type
