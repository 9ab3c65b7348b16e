#!/usr/bin/env python3
"""Deleting in volume with the Python SDK: a deletion batch, the recycle bin, a batch restore.
Also the SDK's CI test.

    python examples/batch_cleanup.py --addr 127.0.0.1:50051 \
        --rep-token "$(crm-service token --tenant demo --user alice --role sales_rep)" \
        --supervisor-token "$(crm-service token --tenant demo --user bob --role supervisor)"

A sales rep submits three duplicate customers as one batch; the one with an open order is excluded
with why and the others are queued. The rep cannot approve their own batch; a supervisor does. The
rep runs it and polls its progress until it completes; the recycle bin shows what it deleted, who
asked and who approved; the supervisor restores the whole batch. Exits 1 with a message on the
first outcome that differs from what the service promises.
"""

from __future__ import annotations

import sys
import time
import uuid

import grpc

from crm.v1 import batch_pb2, customer_pb2, records_pb2
from crm_client import Client
from golden_path import Mismatch, check, expect_error, run_example

Batch = batch_pb2.DeletionBatchState
Item = batch_pb2.DeletionBatchItemState


def wait_for(client: Client, batch_id: str, state: int, within: float = 30.0) -> batch_pb2.DeletionBatch:
    """Polls GetDeletionBatch (the batch is its own long-running operation) until it reads `state`."""
    deadline = time.monotonic() + within
    while True:
        batch = client.batches.GetDeletionBatch(
            batch_pb2.GetDeletionBatchRequest(batch_id=batch_id)
        ).batch
        if batch.state == state:
            return batch
        if time.monotonic() > deadline:
            raise Mismatch(f"batch {batch_id} is {Batch.Name(batch.state)} after {within} s, "
                           f"not {Batch.Name(state)}")
        time.sleep(0.1)


def batch_cleanup(addr: str, rep_token: str, supervisor_token: str) -> None:
    rep = Client(addr, rep_token)
    sup = Client(addr, supervisor_token)
    run = uuid.uuid4().hex[:8]  # so the example can run again against the same database

    print("three duplicates from a bad import; the third has an open order")
    ids = [
        rep.customers.CreateCustomer(customer_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(name=f"Import duplicate {run} {n}",
                                           lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_LEAD),
        )).customer.id
        for n in range(3)
    ]
    rep.records.CreateContact(records_pb2.CreateContactRequest(
        contact=records_pb2.Contact(customer_id=ids[0], full_name="Hank Scorpio")))
    rep.records.CreateOrder(records_pb2.CreateOrderRequest(order=records_pb2.Order(
        customer_id=ids[2], number=f"SO-{run}", amount_minor=100, currency="USD",
        status=records_pb2.ORDER_STATUS_OPEN)))

    print("1. submit: every customer previewed, the blocked one excluded with why")
    submitted = rep.batches.SubmitDeletionBatch(batch_pb2.SubmitDeletionBatchRequest(
        customer_ids=ids, reason="duplicates of a bad import", request_id=str(uuid.uuid4())))
    batch = submitted.batch
    states = {item.customer_id: item for item in submitted.items}
    check(batch.state == Batch.DELETION_BATCH_STATE_PENDING, f"batch {batch.id} is PENDING",
          got=Batch.Name(batch.state))
    check([states[i].state for i in ids] == [Item.DELETION_BATCH_ITEM_STATE_QUEUED] * 2
          + [Item.DELETION_BATCH_ITEM_STATE_EXCLUDED], "two QUEUED, the third EXCLUDED")
    check(states[ids[2]].excluded_reason == "CUSTOMER_HAS_BLOCKERS"
          and [b.reason for b in states[ids[2]].blockers] == ["OPEN_ORDER"],
          "excluded for its open order", got=(states[ids[2]].excluded_reason,
                                               [b.reason for b in states[ids[2]].blockers]))
    check((batch.impact.included_count, batch.impact.excluded_count, batch.impact.cascade_count)
          == (2, 1, 1), "impact: 2 included, 1 excluded, 1 record cascades",
          got=(batch.impact.included_count, batch.impact.excluded_count,
               batch.impact.cascade_count))

    print("2. the submitter cannot approve; a supervisor can")
    expect_error(rep.batches.ApproveDeletionBatch,
                 batch_pb2.ApproveDeletionBatchRequest(batch_id=batch.id),
                 grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    sup.batches.ApproveDeletionBatch(batch_pb2.ApproveDeletionBatchRequest(batch_id=batch.id))

    print("3. run it in the background and poll until it completes")
    rep.batches.RunDeletionBatch(batch_pb2.RunDeletionBatchRequest(batch_id=batch.id))
    done = wait_for(rep, batch.id, Batch.DELETION_BATCH_STATE_COMPLETED)
    check((done.progress.deleted, done.progress.excluded, done.progress.deleted_records) == (2, 1, 1),
          "2 customers and 1 record deleted, 1 excluded",
          got=(done.progress.deleted, done.progress.excluded, done.progress.deleted_records))

    print("4. the recycle bin: what the batch deleted, who asked, who approved")
    entries = sup.customers.ListDeletedCustomers(
        customer_pb2.ListDeletedCustomersRequest(deletion_batch_id=batch.id)).deleted_customers
    check(sorted(e.customer.id for e in entries) == sorted(ids[:2]), "the two deleted customers")
    check(all(e.requested_by == batch.requester_id and e.approved_by == done.decided_by
              and e.deletion_batch_id == batch.id for e in entries),
          "each names the batch, its requester and its approver")
    check(sorted(e.deleted_records for e in entries) == [0, 1], "with the records each took",
          got=sorted(e.deleted_records for e in entries))

    print("5. restore the batch: both customers come back")
    sup.batches.RestoreDeletionBatch(batch_pb2.RestoreDeletionBatchRequest(
        batch_id=batch.id, request_id=str(uuid.uuid4())))
    restored = wait_for(sup, batch.id, Batch.DELETION_BATCH_STATE_RESTORED)
    check(restored.progress.restored == 2, "2 restored", got=restored.progress.restored)
    for customer_id in ids:
        customer = rep.customers.GetCustomer(
            customer_pb2.GetCustomerRequest(customer_id=customer_id)).customer
        check(not customer.HasField("delete_time"), f"{customer_id} is live")
    remaining = sup.customers.ListDeletedCustomers(
        customer_pb2.ListDeletedCustomersRequest(deletion_batch_id=batch.id)).deleted_customers
    check(len(remaining) == 0, "the bin no longer holds them", got=len(remaining))

    rep.close()
    sup.close()


def main() -> int:
    return run_example(batch_cleanup, "batch cleanup")


if __name__ == "__main__":
    sys.exit(main())
