// Reads the rich error model (AIP-193) from a failed call.
//
// crm-service puts a google.rpc.Status in the grpc-status-details-bin trailer: every error carries
// an ErrorInfo (domain "crm-service", a stable reason, ids as metadata); invalid input adds a
// BadRequest naming each field; a failed precondition adds a PreconditionFailure; an overloaded or
// unavailable server adds a RetryInfo with the delay to wait. connect's gRPC transport decodes the
// trailer into ConnectError's details; this module turns them into typed values.

import { ConnectError, Code } from "@connectrpc/connect";
import { createRegistry, type Message } from "@bufbuild/protobuf";
import {
  BadRequestSchema,
  DebugInfoSchema,
  ErrorInfoSchema,
  HelpSchema,
  LocalizedMessageSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RequestInfoSchema,
  ResourceInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type {
  BadRequest,
  ErrorInfo,
  PreconditionFailure,
  PreconditionFailure_Violation,
  RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";

export { Code } from "@connectrpc/connect";

/** ErrorInfo.domain of every error crm-service returns. */
export const ERROR_DOMAIN = "crm-service";

// Every ErrorInfo.reason the service sends and what it means (the service's src/reason.rs;
// scripts/check-typescript-sdk.sh keeps this list equal to it).
export const REASONS = {
  INVALID_FIELD: "a field breaks its rule; BadRequest names each field and why",
  MALFORMED_REQUEST: "the bytes are not a message of the method's request type",
  METADATA_TOO_LARGE: "the call's metadata exceeds 16 KiB",
  REQUEST_ID_REUSED: "request_id was used with other arguments: use a new request_id",
  MISSING_TOKEN: "no `authorization: Bearer <token>` header",
  INVALID_TOKEN: "the token is expired, badly signed, or its claims are malformed",
  ROLE_NOT_ALLOWED: "the token's roles do not allow the call; metadata lists the roles that do",
  SELF_APPROVAL_FORBIDDEN: "the requester of a deletion cannot decide it",
  NOT_ROUTED_TO_YOU: "the request is routed to the supervisors of the requester's teams (metadata `teams`) or an admin",
  ADMIN_APPROVAL_REQUIRED: "the two-person rule needs an admin among the approvers: the remaining approval must be an admin's",
  ALREADY_APPROVED: "you approved this request already; the two-person rule needs another approver",
  OWNER_ASSIGNMENT_FORBIDDEN: "only a supervisor, admin or service may set another owner",
  NOT_FOUND: "no such resource in the caller's tenant",
  EXTERNAL_REF_TAKEN: "another live customer of the tenant has this external_ref",
  CUSTOMER_NOT_DELETED: "restore or erase of a customer that is live",
  ETAG_MISMATCH: "the etag sent is not the current one (metadata currentEtag): read again and retry",
  TRANSACTION_CONFLICT: "the database broke a conflict between transactions: retry",
  REQUEST_ID_IN_FLIGHT: "a call with the same request_id is still running: retry to get its answer",
  CUSTOMER_DELETED: "the customer is deleted: restore it first",
  CUSTOMER_HAS_BLOCKERS: "something blocks the deletion; PreconditionFailure lists each blocker and its resolution",
  PREVIEW_STALE: "the customer's graph changed since the preview: preview again",
  DELETION_ALREADY_REQUESTED: "the customer already has an open deletion request",
  DELETION_REQUEST_NOT_PENDING: "only a PENDING request can be approved or rejected",
  DELETION_REQUEST_NOT_OPEN: "only a PENDING or APPROVED request can be cancelled",
  DELETION_REQUEST_EXPIRED: "the request's lifetime passed: submit a new one",
  DELETION_NOT_APPROVED: "DeleteCustomer needs an APPROVED request",
  DELETION_BATCH_NOT_PENDING: "only a PENDING batch can be approved or rejected",
  DELETION_BATCH_NOT_OPEN: "only a PENDING or APPROVED batch can be cancelled",
  DELETION_BATCH_EXPIRED: "the batch's lifetime passed undecided or unstarted: submit a new one",
  DELETION_BATCH_NOT_APPROVED: "RunDeletionBatch needs an APPROVED batch",
  DELETION_BATCH_NOT_COMPLETED: "RestoreDeletionBatch needs a COMPLETED batch",
  TOO_MANY_OPEN_BATCHES: "the tenant has as many open batches as allowed (metadata limit): finish, cancel or let one lapse",
  NOTHING_TO_DELETE: "every customer of the batch was excluded (the items say why): nothing to approve",
  RESTORE_CONFLICT: "a live customer now holds the external_ref (metadata names it)",
  REQUEST_KIND_MISMATCH: "a MERGE request is executed by MergeCustomers, a deletion request by DeleteCustomer",
  DELETED_BY_MERGE: "the customer was merged into another: UnmergeCustomers brings it back, not RestoreCustomer",
  NOT_MERGED: "UnmergeCustomers of a customer no merge deleted",
  RETENTION_EXPIRED: "the retention passed: the customer or record is being erased",
  INVALID_STATUS_TRANSITION: "the record's status cannot change that way",
  RECORD_NOT_DELETABLE: "a business record (order, contract) is cancelled or terminated, not deleted",
  RECORD_DELETED: "the record is deleted: restore it first",
  RECORD_NOT_DELETED: "restore of a record that is live",
  LEGAL_HOLD: "the customer is under legal hold: an admin must lift it first",
  OPEN_ORDER: "an open order blocks the deletion: complete or cancel it",
  ACTIVE_CONTRACT: "an active contract blocks the deletion: terminate it or let it expire",
  ACTIVE_PROJECT: "an active project blocks the deletion: finish it",
  UNKNOWN_RECORD_STATE: "a record in a state the policy table does not know: contact an administrator",
  SERVER_OVERLOADED: "too many calls in flight: retry after RetryInfo's delay",
  SERVER_SHUTTING_DOWN: "the server is stopping: retry on another replica",
  DATABASE_UNAVAILABLE: "the database cannot be reached: retry later",
  DATABASE_BUSY: "the database is busy (locks, SQLite's writer): retry with backoff",
  DEADLINE_EXCEEDED: "the call's deadline passed; a write was rolled back",
  INTERNAL: "a bug or an unexpected database failure; the server logged its cause",
} as const satisfies Record<string, string>;

/** A reason crm-service sends (ErrorInfo.reason). */
export type Reason = keyof typeof REASONS;

const KNOWN_DETAILS = createRegistry(
  ErrorInfoSchema,
  BadRequestSchema,
  PreconditionFailureSchema,
  RetryInfoSchema,
  ResourceInfoSchema,
  QuotaFailureSchema,
  HelpSchema,
  LocalizedMessageSchema,
  DebugInfoSchema,
  RequestInfoSchema,
);

/** A status code's name as gRPC spells it: codeName(Code.InvalidArgument) is "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED"; // connect spells it Canceled, gRPC CANCELLED
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A failed call: its status code and message, and the decoded google.rpc details. */
export class RichError extends Error {
  override readonly name = "RichError";
  /** The gRPC status code (connect's Code enum: Code.InvalidArgument is 3, as in gRPC). */
  readonly code: Code;
  /** The server's message, without connect's "[code]" prefix. */
  readonly rawMessage: string;
  readonly errorInfo?: ErrorInfo;
  readonly badRequest?: BadRequest;
  readonly preconditionFailure?: PreconditionFailure;
  readonly retryInfo?: RetryInfo;
  /** Every detail of a known google.rpc type, decoded, in the order the server sent them. */
  readonly details: Message[];

  constructor(error: ConnectError) {
    super(error.message, { cause: error });
    this.code = error.code;
    this.rawMessage = error.rawMessage;
    this.details = error.findDetails(KNOWN_DETAILS);
    this.errorInfo = error.findDetails(ErrorInfoSchema)[0];
    this.badRequest = error.findDetails(BadRequestSchema)[0];
    this.preconditionFailure = error.findDetails(PreconditionFailureSchema)[0];
    this.retryInfo = error.findDetails(RetryInfoSchema)[0];
  }

  /** The code's name as gRPC spells it, e.g. "INVALID_ARGUMENT". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** ErrorInfo.reason, e.g. "INVALID_FIELD"; "" if the error carries no ErrorInfo. */
  get reason(): string {
    return this.errorInfo?.reason ?? "";
  }

  get domain(): string {
    return this.errorInfo?.domain ?? "";
  }

  /** ErrorInfo.metadata: the ids and limits involved, e.g. { currentEtag: "..." }. */
  get metadata(): Record<string, string> {
    return { ...(this.errorInfo?.metadata ?? {}) };
  }

  /** BadRequest's field violations, field path -> description. */
  get fieldViolations(): Record<string, string> {
    const violations: Record<string, string> = {};
    for (const v of this.badRequest?.fieldViolations ?? []) violations[v.field] = v.description;
    return violations;
  }

  get preconditionViolations(): PreconditionFailure_Violation[] {
    return this.preconditionFailure?.violations ?? [];
  }

  /** RetryInfo's delay in milliseconds: how long to wait before retrying; undefined without one. */
  get retryDelayMs(): number | undefined {
    const delay = this.retryInfo?.retryDelay;
    if (delay === undefined) return undefined;
    return Number(delay.seconds) * 1000 + Math.floor(delay.nanos / 1_000_000);
  }

  override toString(): string {
    let text = `${this.codeName}: ${this.rawMessage}`;
    if (this.reason) text += ` [${this.domain}/${this.reason}]`;
    for (const [path, why] of Object.entries(this.fieldViolations)) text += `\n  ${path}: ${why}`;
    for (const v of this.preconditionViolations) text += `\n  ${v.type} ${v.subject}: ${v.description}`;
    if (this.retryDelayMs !== undefined) text += `\n  retry after ${this.retryDelayMs} ms`;
    return text;
  }
}

/**
 * Decodes the error of a failed call (what a client method threw or an event stream ended with).
 * Anything that is not a ConnectError (a network failure, an abort) becomes one first, so this
 * never throws; errors without details (e.g. from a proxy) have only code and message.
 */
export function richError(error: unknown): RichError {
  if (error instanceof RichError) return error;
  return new RichError(ConnectError.from(error));
}
