// A client of crm-service: connect-es clients of every crm.v1 service (and grpc.health.v1) on one
// HTTP/2 connection, speaking the gRPC protocol, with the bearer token and a deadline on every call.

import type * as http2 from "node:http2";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AuditService } from "./gen/crm/v1/audit_pb.js";
import { DeletionBatchService } from "./gen/crm/v1/batch_pb.js";
import { CustomerService } from "./gen/crm/v1/customer_pb.js";
import { DeletionApprovalService } from "./gen/crm/v1/deletion_pb.js";
import { CustomerEventService } from "./gen/crm/v1/events_pb.js";
import { RecordService } from "./gen/crm/v1/records_pb.js";
import { TenantSettingsService } from "./gen/crm/v1/settings_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";

/** A JWT, or a function returning one (called before every call, so that it can refresh). */
export type Token = string | (() => string | Promise<string>);

/** The deadline of a call that names none: long enough for any unary call of the API. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface CrmClientOptions {
  /** Sent as `authorization: Bearer <token>`; without it only health and reflection answer. */
  token?: Token;
  /**
   * The deadline of every call that sets no `timeoutMs` of its own, in milliseconds (default
   * DEFAULT_TIMEOUT_MS); 0 for none. The server cancels the call's work when it passes. A stream
   * such as WatchCustomerEvents usually wants `{ timeoutMs: 0 }` and an AbortSignal instead.
   */
  timeoutMs?: number;
  /** TLS (https) instead of plaintext HTTP/2; `nodeOptions` may carry the `ca` to trust. */
  tls?: boolean;
  /** Options of node:http2's connect(), e.g. `{ ca }` for a private certificate authority. */
  nodeOptions?: http2.ClientSessionOptions | http2.SecureClientSessionOptions;
  /** More interceptors, run after the one that adds the token. */
  interceptors?: Interceptor[];
}

/** Adds `authorization: Bearer <token>` to every call, unary or streaming. */
export function bearerToken(token: Token): Interceptor {
  return (next) => async (req) => {
    const value = typeof token === "function" ? await token() : token;
    req.header.set("authorization", `Bearer ${value}`);
    return next(req);
  };
}

/** The base URL of `addr`: "host:port" (plaintext, or https with `tls`) or a full URL. */
function baseUrl(addr: string, tls: boolean): string {
  return /^[a-z]+:\/\//i.test(addr) ? addr : `${tls ? "https" : "http"}://${addr}`;
}

/**
 * A gRPC transport (HTTP/2) to crm-service at `addr`, and the function that closes its connection.
 */
export function createCrmTransport(
  addr: string,
  options: CrmClientOptions = {},
): { transport: Transport; close: () => void } {
  const url = baseUrl(addr, options.tls ?? false);
  // Ours, not one the transport makes itself: close() needs it to end the connection (an idle
  // connection does not keep Node running; one with a watch stream open does).
  const sessionManager = new Http2SessionManager(url, {}, options.nodeOptions);
  const interceptors = [...(options.token ? [bearerToken(options.token)] : []), ...(options.interceptors ?? [])];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager,
    interceptors,
    defaultTimeoutMs: timeoutMs > 0 ? timeoutMs : undefined,
  });
  return { transport, close: () => sessionManager.abort() };
}

/** The clients of every crm.v1 service, and health, on one connection. */
export interface CrmClient {
  customers: Client<typeof CustomerService>;
  records: Client<typeof RecordService>;
  deletions: Client<typeof DeletionApprovalService>;
  batches: Client<typeof DeletionBatchService>;
  audit: Client<typeof AuditService>;
  events: Client<typeof CustomerEventService>;
  settings: Client<typeof TenantSettingsService>;
  /** grpc.health.v1: answers without a token. */
  health: Client<typeof Health>;
  transport: Transport;
  /** Closes the connection; calls in flight (an open event stream too) fail with CANCELLED. */
  close(): void;
}

/**
 * A client of crm-service at `addr` ("127.0.0.1:50051", or a URL).
 *
 *     const crm = createCrmClient("127.0.0.1:50051", { token });
 *     const { customer } = await crm.customers.getCustomer({ customerId });
 *     crm.close();
 */
export function createCrmClient(addr: string, options: CrmClientOptions = {}): CrmClient {
  const { transport, close } = createCrmTransport(addr, options);
  return {
    customers: createClient(CustomerService, transport),
    records: createClient(RecordService, transport),
    deletions: createClient(DeletionApprovalService, transport),
    batches: createClient(DeletionBatchService, transport),
    audit: createClient(AuditService, transport),
    events: createClient(CustomerEventService, transport),
    settings: createClient(TenantSettingsService, transport),
    health: createClient(Health, transport),
    transport,
    close,
  };
}
