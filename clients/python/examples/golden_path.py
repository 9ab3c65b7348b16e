#!/usr/bin/env python3
"""The deletion golden path of crm-service, with the Python SDK. Also the SDK's CI test.

    python examples/golden_path.py --addr 127.0.0.1:50051 \
        --rep-token "$(crm-service token --tenant demo --user alice --role sales_rep)" \
        --supervisor-token "$(crm-service token --tenant demo --user bob --role supervisor)"

A sales rep creates a customer with a contact and a paid order, previews its deletion and asks for
it; a supervisor approves; the rep deletes it (the contact goes, the paid order stays); the
supervisor restores it (the contact comes back). On the way it reads the rich errors the service
returns (ErrorInfo, BadRequest, PreconditionFailure) and checks health. Exits 1 with a message on
the first outcome that differs from what the service promises.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.v1 import customer_pb2, deletion_pb2, records_pb2
from crm_client import Client, connect, rich_error

DOMAIN = "crm-service"
State = deletion_pb2.DeletionRequestState


class Mismatch(Exception):
    """An outcome differs from the documented one."""


_UNSET = object()


def check(condition: bool, what: str, got: object = _UNSET) -> None:
    """Prints `what` if it holds; otherwise stops the example, saying what was seen instead."""
    if not condition:
        raise Mismatch(what if got is _UNSET else f"{what}, got {got!r}")
    print(f"  ok  {what}")


def expect_error(call, request, code: grpc.StatusCode, reason: str):
    """Makes a call that must fail with `code` and ErrorInfo `reason`; returns the RichError."""
    try:
        call(request)
    except grpc.RpcError as e:
        err = rich_error(e)
        print(f"  ..  {err}".replace("\n", "\n      "))
        check(err.code == code, f"fails {code.name}", got=err.code.name)
        check(err.domain == DOMAIN, f"ErrorInfo.domain is {DOMAIN!r}", got=err.domain)
        check(err.reason == reason, f"ErrorInfo.reason is {reason}", got=err.reason)
        return err
    raise Mismatch(f"{type(request).__name__} succeeded; expected {code.name} {reason}")


def golden_path(addr: str, rep_token: str, supervisor_token: str) -> None:
    rep = Client(addr, rep_token)
    sup = Client(addr, supervisor_token)
    run = uuid.uuid4().hex[:8]  # so the example can run again against the same database

    print("health")
    with connect(addr) as channel:  # health needs no token
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="crm.v1.CustomerService"), timeout=5
        )
    check(reply.status == health_pb2.HealthCheckResponse.SERVING, "crm.v1.CustomerService is SERVING")

    print("a mistake names the field at fault")
    err = expect_error(
        rep.customers.CreateCustomer,
        customer_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(
                name="", lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_LEAD
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
    )
    check("customer.name" in err.field_violations, "BadRequest names customer.name")

    print("a customer with a contact and a paid order")
    customer = rep.customers.CreateCustomer(
        customer_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(
                name=f"Globex {run}",
                lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_CUSTOMER,
                external_ref=f"ERP-{run}",
            ),
            request_id=str(uuid.uuid4()),
        )
    ).customer
    check(bool(customer.id) and not customer.HasField("delete_time"), f"customer {customer.id} is live")
    first_etag = rep.customers.PreviewDeleteCustomer(
        customer_pb2.PreviewDeleteCustomerRequest(customer_id=customer.id)
    ).preview.etag
    contact = rep.records.CreateContact(
        records_pb2.CreateContactRequest(
            contact=records_pb2.Contact(customer_id=customer.id, full_name="Hank Scorpio")
        )
    ).contact
    order = rep.records.CreateOrder(
        records_pb2.CreateOrderRequest(
            order=records_pb2.Order(
                customer_id=customer.id,
                number=f"SO-{run}",
                amount_minor=9900,
                currency="USD",
                status=records_pb2.ORDER_STATUS_PAID,
            )
        )
    ).order

    print("1. preview: the contact goes, the paid order stays, nothing blocks")
    preview = rep.customers.PreviewDeleteCustomer(
        customer_pb2.PreviewDeleteCustomerRequest(customer_id=customer.id)
    ).preview
    check(preview.cascade_count == 1 and preview.keep_count == 1,
          "1 record cascades, 1 is kept",
          got=(preview.cascade_count, preview.keep_count))
    check(not preview.blockers and preview.approval_required, "no blockers; approval required")
    check(preview.etag != first_etag, "adding records moved the graph etag")

    print("   submitting with the etag of an older preview fails")
    err = expect_error(
        rep.deletions.SubmitDeletionRequest,
        deletion_pb2.SubmitDeletionRequestRequest(
            customer_id=customer.id, preview_etag=first_etag, reason="duplicate account"
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PREVIEW_STALE",
    )
    check(bool(err.precondition_violations), "with a PreconditionFailure")

    print("2. the sales rep asks, with the preview's etag and a reason")
    request = rep.deletions.SubmitDeletionRequest(
        deletion_pb2.SubmitDeletionRequestRequest(
            customer_id=customer.id, preview_etag=preview.etag, reason="duplicate account",
            request_id=str(uuid.uuid4()),
        )
    ).deletion_request
    check(request.state == State.DELETION_REQUEST_STATE_PENDING,
          f"request {request.id} is PENDING", got=State.Name(request.state))

    print("3. a sales rep cannot approve; a supervisor can")
    expect_error(
        rep.deletions.ApproveDeletionRequest,
        deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id),
        grpc.StatusCode.PERMISSION_DENIED,
        "ROLE_NOT_ALLOWED",
    )
    request = sup.deletions.ApproveDeletionRequest(
        deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id)
    ).deletion_request
    check(request.state == State.DELETION_REQUEST_STATE_APPROVED
          and request.decided_by not in ("", request.requester_id),
          "APPROVED, by someone other than the requester",
          got=(State.Name(request.state), request.decided_by))

    print("4. delete: the customer and its contact go, the paid order stays")
    deleted = rep.customers.DeleteCustomer(
        customer_pb2.DeleteCustomerRequest(
            customer_id=customer.id, deletion_request_id=request.id, etag=preview.etag,
            request_id=str(uuid.uuid4()),
        )
    )
    check(deleted.deleted_records == 1, "1 record deleted with it", got=deleted.deleted_records)
    gone = rep.customers.GetCustomer(customer_pb2.GetCustomerRequest(customer_id=customer.id)).customer
    check(gone.HasField("delete_time") and gone.HasField("purge_time") and bool(gone.deletion_id),
          "the customer is deleted, with purge_time and deletion_id")
    contact = rep.records.GetContact(records_pb2.GetContactRequest(contact_id=contact.id)).contact
    check(contact.HasField("delete_time"), "the contact is deleted")
    order = rep.records.GetOrder(records_pb2.GetOrderRequest(order_id=order.id)).order
    check(not order.HasField("delete_time"), "the paid order is kept")
    request = rep.deletions.GetDeletionRequest(
        deletion_pb2.GetDeletionRequestRequest(deletion_request_id=request.id)
    ).deletion_request
    check(request.state == State.DELETION_REQUEST_STATE_EXECUTED,
          "the request is EXECUTED", got=State.Name(request.state))

    print("5. restore: exactly what the deletion took comes back")
    restored = sup.customers.RestoreCustomer(
        customer_pb2.RestoreCustomerRequest(customer_id=customer.id, request_id=str(uuid.uuid4()))
    )
    check(restored.customer.id == customer.id and not restored.customer.HasField("delete_time"),
          "the customer is live again")
    check(restored.restored_records == 1, "1 record restored", got=restored.restored_records)
    contacts = rep.records.ListContacts(
        records_pb2.ListContactsRequest(customer_id=customer.id)
    ).contacts
    check([c.id for c in contacts] == [contact.id] and not contacts[0].HasField("delete_time"),
          "the contact is back")

    rep.channel.close()
    sup.channel.close()


def run_example(example, done: str) -> int:
    """Parses the common arguments, runs `example(addr, rep_token, supervisor_token)` and turns its
    outcome into an exit status (shared by the examples)."""
    parser = argparse.ArgumentParser(description=sys.modules[example.__module__].__doc__.split("\n\n")[0])
    parser.add_argument("--addr", required=True, help="host:port of crm-service")
    parser.add_argument("--rep-token", required=True, help="JWT with the sales_rep role")
    parser.add_argument("--supervisor-token", required=True, help="JWT with the supervisor role")
    args = parser.parse_args()
    try:
        example(args.addr, args.rep_token, args.supervisor_token)
    except Mismatch as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"FAIL: unexpected error: {rich_error(e)}", file=sys.stderr)
        return 1
    print(f"{done}: OK")
    return 0


def main() -> int:
    return run_example(golden_path, "golden path")


if __name__ == "__main__":
    sys.exit(main())
