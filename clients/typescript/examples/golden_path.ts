// The deletion golden path of crm-service, with the TypeScript SDK. Also the SDK's CI test.
//
//     node dist/examples/golden_path.js --addr 127.0.0.1:50051 \
//       --rep-token "$(crm-service token --tenant demo --user alice --role sales_rep)" \
//       --supervisor-token "$(crm-service token --tenant demo --user bob --role supervisor)" \
//       [--limited-addr 127.0.0.1:50052]
//
// A sales rep creates a customer with a contact and a paid order, previews its deletion and asks
// for it; a supervisor approves; the rep deletes it (the contact goes, the paid order stays); the
// supervisor restores it (the contact comes back). Then the supervisor reads the tenant's event
// stream of all that, stops half-way and resumes from the last sequence it saw, and sees a new
// event arrive live. On the way it reads the rich errors the service returns (ErrorInfo,
// BadRequest, PreconditionFailure) and checks health. With --limited-addr (a server started with
// --max-concurrent-calls 1, the same JWT secret) it also sends a burst that the server sheds with
// RESOURCE_EXHAUSTED and a RetryInfo, and retries after the delay it asks for. Exits 1 with a
// message on the first outcome that differs from what the service promises.

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import {
  Code,
  codeName,
  createCrmClient,
  CustomerEventType,
  DeletionRequestState,
  ERROR_DOMAIN,
  LifecycleStage,
  OrderStatus,
  richError,
  type CrmClient,
  type CustomerEvent,
  type Reason,
  type RichError,
} from "crm-client";
import { HealthCheckResponse_ServingStatus } from "crm-client/gen/grpc/health/v1/health_pb";

/** An outcome differs from the documented one. */
class Mismatch extends Error {}

/** Prints `what` if it holds; otherwise stops the example, saying what was seen instead. */
function check(condition: boolean, what: string, ...got: unknown[]): void {
  if (!condition) {
    const seen = got.length ? `, got ${got.map((g) => JSON.stringify(g, bigints)).join(" ")}` : "";
    throw new Mismatch(what + seen);
  }
  console.log(`  ok  ${what}`);
}

function bigints(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

/** Makes a call that must fail with `code` and ErrorInfo `reason`; returns the RichError. */
async function expectError(call: () => Promise<unknown>, code: Code, reason: Reason): Promise<RichError> {
  try {
    await call();
  } catch (e) {
    const err = richError(e);
    console.log(`  ..  ${err}`.replaceAll("\n", "\n      "));
    check(err.code === code, `fails ${codeName(code)}`, err.codeName);
    check(err.domain === ERROR_DOMAIN, `ErrorInfo.domain is "${ERROR_DOMAIN}"`, err.domain);
    check(err.reason === reason, `ErrorInfo.reason is ${reason}`, err.reason);
    return err;
  }
  throw new Mismatch(`the call succeeded; expected ${codeName(code)} ${reason}`);
}

/** The sequence to resume the tenant's event stream after: the last event's (0 if none yet). */
async function lastSequence(sup: CrmClient): Promise<bigint> {
  let after = 0n;
  for (;;) {
    const page = await sup.events.listCustomerEvents({ afterSequence: after, pageSize: 1000 });
    if (page.events.length === 0) return after;
    after = page.lastSequence;
  }
}

/**
 * Reads the event stream from after `afterSequence` until `stop` says so (leaving the loop ends the
 * call). A stream has no deadline of its own (`timeoutMs: 0`): this one is cancelled by its signal
 * when the awaited event has not come within 15 s, a failure rather than a hang.
 */
async function watch(
  sup: CrmClient,
  afterSequence: bigint,
  stop: (event: CustomerEvent) => boolean,
): Promise<CustomerEvent[]> {
  const seen: CustomerEvent[] = [];
  const giveUp = new AbortController();
  const timer = setTimeout(() => giveUp.abort(), 15_000);
  try {
    const stream = sup.events.watchCustomerEvents({ afterSequence }, { timeoutMs: 0, signal: giveUp.signal });
    for await (const { event } of stream) {
      if (!event) continue;
      seen.push(event);
      if (stop(event)) return seen;
    }
    throw new Mismatch(`the event stream ended after ${seen.length} events, before the awaited one`);
  } catch (e) {
    if (giveUp.signal.aborted) {
      throw new Mismatch(`no awaited event within 15 s of watching after ${afterSequence} (${seen.length} seen)`);
    }
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function goldenPath(addr: string, repToken: string, supervisorToken: string): Promise<void> {
  const rep = createCrmClient(addr, { token: repToken });
  const sup = createCrmClient(addr, { token: supervisorToken });
  const anonymous = createCrmClient(addr);
  const run = randomUUID().slice(0, 8); // so the example can run again against the same database
  try {
    console.log("health");
    const health = await anonymous.health.check({ service: "crm.v1.CustomerService" }, { timeoutMs: 5_000 });
    check(health.status === HealthCheckResponse_ServingStatus.SERVING, "crm.v1.CustomerService is SERVING");
    await expectError(() => anonymous.customers.listCustomers({}), Code.Unauthenticated, "MISSING_TOKEN");

    console.log("a mistake names the field at fault (BadRequest)");
    let err = await expectError(
      () => rep.customers.createCustomer({ customer: { name: "", lifecycleStage: LifecycleStage.LEAD } }),
      Code.InvalidArgument,
      "INVALID_FIELD",
    );
    check("customer.name" in err.fieldViolations, "BadRequest names customer.name", err.fieldViolations);
    const types = err.details.map((d) => d.$typeName);
    check(types.includes("google.rpc.ErrorInfo") && types.includes("google.rpc.BadRequest"),
      "both details decode as google.rpc types", types);

    const start = await lastSequence(sup);

    console.log("a customer with a contact and a paid order");
    const { customer } = await rep.customers.createCustomer({
      customer: { name: `Globex ${run}`, lifecycleStage: LifecycleStage.CUSTOMER, externalRef: `ERP-${run}` },
      requestId: randomUUID(),
    });
    if (!customer) throw new Mismatch("CreateCustomer returned no customer");
    check(customer.id !== "" && customer.deleteTime === undefined, `customer ${customer.id} is live`);
    const firstEtag = (await rep.customers.previewDeleteCustomer({ customerId: customer.id })).preview?.etag ?? "";
    let { contact } = await rep.records.createContact({
      contact: { customerId: customer.id, fullName: "Hank Scorpio" },
    });
    let { order } = await rep.records.createOrder({
      order: { customerId: customer.id, number: `SO-${run}`, amountMinor: 9900n, currency: "USD", status: OrderStatus.PAID },
    });
    if (!contact || !order) throw new Mismatch("CreateContact or CreateOrder returned nothing");

    console.log("1. preview: the contact goes, the paid order stays, nothing blocks");
    const { preview } = await rep.customers.previewDeleteCustomer({ customerId: customer.id });
    if (!preview) throw new Mismatch("PreviewDeleteCustomer returned no preview");
    check(preview.cascadeCount === 1n && preview.keepCount === 1n, "1 record cascades, 1 is kept",
      preview.cascadeCount, preview.keepCount);
    check(preview.blockers.length === 0 && preview.approvalRequired, "no blockers; approval required");
    check(preview.etag !== firstEtag, "adding records moved the graph etag");

    console.log("   submitting with the etag of an older preview fails (PreconditionFailure)");
    err = await expectError(
      () => rep.deletions.submitDeletionRequest({ customerId: customer.id, previewEtag: firstEtag, reason: "duplicate account" }),
      Code.FailedPrecondition,
      "PREVIEW_STALE",
    );
    check(err.preconditionViolations.length > 0, "with a PreconditionFailure", err.preconditionViolations.length);

    console.log("2. the sales rep asks, with the preview's etag and a reason");
    let request = (
      await rep.deletions.submitDeletionRequest({
        customerId: customer.id, previewEtag: preview.etag, reason: "duplicate account", requestId: randomUUID(),
      })
    ).deletionRequest;
    if (!request) throw new Mismatch("SubmitDeletionRequest returned no request");
    check(request.state === DeletionRequestState.PENDING, `request ${request.id} is PENDING`,
      DeletionRequestState[request.state]);
    const requestId = request.id;

    console.log("3. a sales rep cannot approve; a supervisor can");
    err = await expectError(
      () => rep.deletions.approveDeletionRequest({ deletionRequestId: requestId }),
      Code.PermissionDenied,
      "ROLE_NOT_ALLOWED",
    );
    check(Object.keys(err.metadata).length > 0, "ErrorInfo.metadata says which roles may", err.metadata);
    request = (await sup.deletions.approveDeletionRequest({ deletionRequestId: requestId })).deletionRequest;
    check(request?.state === DeletionRequestState.APPROVED && !["", request.requesterId].includes(request.decidedBy),
      "APPROVED, by someone other than the requester", request && DeletionRequestState[request.state], request?.decidedBy);

    console.log("4. delete: the customer and its contact go, the paid order stays");
    const deleted = await rep.customers.deleteCustomer({
      customerId: customer.id, deletionRequestId: requestId, etag: preview.etag, requestId: randomUUID(),
    });
    check(deleted.deletedRecords === 1n, "1 record deleted with it", deleted.deletedRecords);
    const gone = (await rep.customers.getCustomer({ customerId: customer.id })).customer;
    check(gone?.deleteTime !== undefined && gone.purgeTime !== undefined && gone.deletionId !== "",
      "the customer is deleted, with purge_time and deletion_id");
    contact = (await rep.records.getContact({ contactId: contact.id })).contact ?? contact;
    check(contact.deleteTime !== undefined, "the contact is deleted");
    order = (await rep.records.getOrder({ orderId: order.id })).order ?? order;
    check(order.deleteTime === undefined, "the paid order is kept");
    request = (await rep.deletions.getDeletionRequest({ deletionRequestId: requestId })).deletionRequest;
    check(request?.state === DeletionRequestState.EXECUTED, "the request is EXECUTED",
      request && DeletionRequestState[request.state]);

    console.log("5. restore: exactly what the deletion took comes back");
    const restored = await sup.customers.restoreCustomer({ customerId: customer.id, requestId: randomUUID() });
    check(restored.customer?.id === customer.id && restored.customer.deleteTime === undefined,
      "the customer is live again");
    check(restored.restoredRecords === 1n, "1 record restored", restored.restoredRecords);
    const { contacts } = await rep.records.listContacts({ customerId: customer.id });
    check(contacts.length === 1 && contacts[0].id === contact.id && contacts[0].deleteTime === undefined,
      "the contact is back");

    console.log("6. the event stream tells it all, in order; a consumer resumes from a sequence");
    const ours = (e: CustomerEvent) => e.customerId === customer.id;
    const restoredEvent = (e: CustomerEvent) => ours(e) && e.type === CustomerEventType.RESTORED;
    const all = (await watch(sup, start, restoredEvent)).filter(ours);
    const T = CustomerEventType;
    const story = [T.CREATED, T.RECORD_CHANGED, T.RECORD_CHANGED, T.DELETION_REQUESTED, T.DELETION_APPROVED,
      T.DELETED, T.RESTORED];
    check(JSON.stringify(all.map((e) => e.type)) === JSON.stringify(story),
      "created, 2 records, requested, approved, deleted, restored", all.map((e) => T[e.type]));
    check(all.every((e, i) => i === 0 || e.sequence > all[i - 1].sequence), "sequences increase");
    // A consumer that stopped after the deletion was requested (and remembered that sequence) picks
    // up exactly where it left off: nothing missed, nothing twice.
    const firstPart = await watch(sup, start, (e) => ours(e) && e.type === T.DELETION_REQUESTED);
    const resumeAfter = firstPart[firstPart.length - 1].sequence;
    const rest = await watch(sup, resumeAfter, restoredEvent);
    check(rest[0]?.sequence === resumeAfter + 1n, `resumed after ${resumeAfter}: the next event is ${resumeAfter + 1n}`,
      rest[0]?.sequence);
    const resumed = [...firstPart, ...rest].filter(ours);
    check(JSON.stringify(resumed.map((e) => e.sequence), bigints) === JSON.stringify(all.map((e) => e.sequence), bigints),
      "stopped and resumed, it saw the same events as in one go", resumed.map((e) => e.sequence));
    const listed = (await sup.events.listCustomerEvents({ afterSequence: start, pageSize: 1000 })).events.filter(ours);
    check(JSON.stringify(listed.map((e) => e.sequence), bigints) === JSON.stringify(all.map((e) => e.sequence), bigints),
      "ListCustomerEvents (for consumers that poll) lists the same");
    // Then the stream stays open: a change made now arrives on it.
    const tail = await lastSequence(sup);
    const live = watch(sup, tail, (e) => ours(e) && e.type === T.UPDATED);
    await rep.customers.updateCustomer({
      customer: { id: customer.id, name: `Globex ${run} (renamed)` },
      updateMask: { paths: ["name"] },
    });
    const arrived = await live;
    check(arrived.some((e) => ours(e) && e.type === T.UPDATED && e.sequence > tail), "a rename made now arrives live");
  } finally {
    rep.close();
    sup.close();
    anonymous.close();
  }
}

/**
 * At its limit of calls in flight the server sheds the excess at once with RESOURCE_EXHAUSTED,
 * SERVER_OVERLOADED and a RetryInfo; a client waits that delay (with backoff) and retries.
 */
async function retryAfterOverload(limitedAddr: string, repToken: string): Promise<void> {
  console.log("7. a server at its limit sheds calls with a RetryInfo; retrying after its delay succeeds");
  const rep = createCrmClient(limitedAddr, { token: repToken });
  try {
    for (let burst = 1; burst <= 5; burst++) {
      const outcomes = await Promise.allSettled(Array.from({ length: 16 }, () => rep.customers.listCustomers({})));
      const shed = outcomes.flatMap((o) => (o.status === "rejected" ? [richError(o.reason)] : []));
      if (shed.length === 0) continue; // every call finished before the next arrived: try again
      const err = shed[0];
      console.log(`  ..  ${shed.length} of 16 shed: ${err}`.replaceAll("\n", "\n      "));
      check(shed.every((e) => e.code === Code.ResourceExhausted && e.reason === "SERVER_OVERLOADED"),
        "every shed call is RESOURCE_EXHAUSTED SERVER_OVERLOADED", [...new Set(shed.map((e) => e.reason))]);
      check(shed.every((e) => (e.retryDelayMs ?? 0) > 0), "with a RetryInfo delay", err.retryDelayMs);
      let retried = 0;
      for (const e of shed) {
        for (let attempt = 0; ; attempt++) {
          await new Promise((resolve) => setTimeout(resolve, (e.retryDelayMs ?? 100) * 2 ** attempt));
          try {
            await rep.customers.listCustomers({});
            retried++;
            break;
          } catch (again) {
            if (attempt === 4 || richError(again).reason !== "SERVER_OVERLOADED") throw again;
          }
        }
      }
      check(retried === shed.length, `each of the ${shed.length} succeeds when retried after the delay`);
      return;
    }
    throw new Mismatch("5 bursts of 16 calls against a limit of 1 call in flight: none was shed");
  } finally {
    rep.close();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      addr: { type: "string" },
      "rep-token": { type: "string" },
      "supervisor-token": { type: "string" },
      "limited-addr": { type: "string" },
    },
  });
  const addr = values.addr;
  const repToken = values["rep-token"];
  const supervisorToken = values["supervisor-token"];
  if (!addr || !repToken || !supervisorToken) {
    console.error("usage: golden_path.js --addr HOST:PORT --rep-token JWT --supervisor-token JWT [--limited-addr HOST:PORT]");
    return 2;
  }
  try {
    await goldenPath(addr, repToken, supervisorToken);
    if (values["limited-addr"]) await retryAfterOverload(values["limited-addr"], repToken);
    else console.log("(no --limited-addr: RetryInfo not shown)");
  } catch (e) {
    console.error(e instanceof Mismatch ? `FAIL: ${e.message}` : `FAIL: unexpected error: ${richError(e)}`);
    return 1;
  }
  console.log("golden path: OK");
  return 0;
}

process.exitCode = await main();
