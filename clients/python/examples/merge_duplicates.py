#!/usr/bin/env python3
"""Merging a duplicate customer with the Python SDK, and undoing the merge. Also the SDK's CI test.

    python examples/merge_duplicates.py --addr 127.0.0.1:50051 \
        --rep-token "$(crm-service token --tenant demo --user alice --role sales_rep)" \
        --supervisor-token "$(crm-service token --tenant demo --user bob --role supervisor)"

The same company was entered twice with one e-mail. ListDuplicateCandidates finds the pair; the
merge preview says what would move and which fields differ; the sales rep asks for the merge (the
survivor takes the duplicate's phone); the rep cannot approve it, a supervisor does; the merge moves
the duplicate's contact and deletes the duplicate; a supervisor unmerges: the contact goes back, the
duplicate returns and the survivor's phone is reverted. Exits 1 with a message on the first outcome
that differs from what the service promises.
"""

from __future__ import annotations

import sys
import uuid

import grpc

from crm.v1 import customer_pb2, deletion_pb2, events_pb2, records_pb2
from crm_client import Client
from golden_path import check, expect_error, run_example


def merge_duplicates(addr: str, rep_token: str, supervisor_token: str) -> None:
    rep = Client(addr, rep_token)
    sup = Client(addr, supervisor_token)
    run = uuid.uuid4().hex[:8]  # so the example can run again against the same database

    print("the same company twice, with one e-mail; the duplicate has a contact")
    email = f"buyer-{run}@northwind.example"
    duplicate = rep.customers.CreateCustomer(customer_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(name=f"Northwind {run}", email=email,
                                       phone="+44 20 7946 0000",
                                       lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_LEAD),
    )).customer
    survivor = rep.customers.CreateCustomer(customer_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(name=f"Northwind Ltd {run}", email=email,
                                       lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_CUSTOMER),
    )).customer
    contact = rep.records.CreateContact(records_pb2.CreateContactRequest(
        contact=records_pb2.Contact(customer_id=duplicate.id, full_name="Ann Buyer"))).contact

    print("1. the candidates: the survivor, by e-mail")
    candidates = rep.customers.ListDuplicateCandidates(customer_pb2.ListDuplicateCandidatesRequest(
        customer_id=duplicate.id)).candidates
    found = [c for c in candidates if c.customer.id == survivor.id]
    check(len(found) == 1 and customer_pb2.DUPLICATE_MATCH_EMAIL in found[0].matches,
          "the survivor is a candidate, matched by e-mail", got=candidates)

    print("2. the preview: one record moves; the fields that differ")
    preview = rep.customers.PreviewMergeCustomers(customer_pb2.PreviewMergeCustomersRequest(
        duplicate_id=duplicate.id, survivor_id=survivor.id)).preview
    check(preview.move_count == 1, "one record moves", got=preview.move_count)
    differing = {c.field for c in preview.conflicts}
    check({"name", "phone", "lifecycle_stage"} <= differing, "name, phone and stage differ",
          got=differing)

    print("3. the rep asks; the rep cannot approve; a supervisor does")
    request = rep.deletions.SubmitMergeRequest(deletion_pb2.SubmitMergeRequestRequest(
        duplicate_id=duplicate.id, survivor_id=survivor.id,
        duplicate_etag=preview.duplicate_etag, survivor_etag=preview.survivor_etag,
        take_fields=["phone"], reason="entered twice", request_id=str(uuid.uuid4()))).deletion_request
    check(request.kind == deletion_pb2.DELETION_REQUEST_KIND_MERGE
          and request.merge.survivor_id == survivor.id, "a MERGE request naming the survivor")
    expect_error(rep.deletions.ApproveDeletionRequest,
                 deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id),
                 grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    sup.deletions.ApproveDeletionRequest(
        deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id))

    print("4. the merge: the contact moves, the survivor takes the phone, the duplicate is deleted")
    merged = rep.customers.MergeCustomers(customer_pb2.MergeCustomersRequest(
        deletion_request_id=request.id, request_id=str(uuid.uuid4())))
    check(merged.moved_records == 1, "one record moved", got=merged.moved_records)
    check(merged.survivor.phone == "+44 20 7946 0000", "the survivor took the phone",
          got=merged.survivor.phone)
    check(merged.duplicate.HasField("delete_time"), "the duplicate is deleted")
    moved = rep.records.GetContact(records_pb2.GetContactRequest(contact_id=contact.id)).contact
    check(moved.customer_id == survivor.id and moved.etag == contact.etag,
          "the contact is the survivor's, unchanged otherwise")
    expect_error(sup.customers.RestoreCustomer,
                 customer_pb2.RestoreCustomerRequest(customer_id=duplicate.id),
                 grpc.StatusCode.FAILED_PRECONDITION, "DELETED_BY_MERGE")

    print("5. the unmerge: the contact goes back, the duplicate returns, the phone is reverted")
    undone = sup.customers.UnmergeCustomers(customer_pb2.UnmergeCustomersRequest(
        duplicate_id=duplicate.id, request_id=str(uuid.uuid4())))
    check(undone.moved_back_records == 1 and list(undone.reverted_fields) == ["phone"],
          "one record back, the phone reverted",
          got=(undone.moved_back_records, list(undone.reverted_fields)))
    check(not undone.duplicate.HasField("delete_time"), "the duplicate is live")
    check(undone.survivor.phone == survivor.phone, "the survivor's phone is its own again",
          got=undone.survivor.phone)
    back = rep.records.GetContact(records_pb2.GetContactRequest(contact_id=contact.id)).contact
    check(back.customer_id == duplicate.id, "the contact is the duplicate's again")
    kinds, after = set(), 0
    while True:
        page = sup.events.ListCustomerEvents(
            events_pb2.ListCustomerEventsRequest(after_sequence=after, page_size=1000))
        kinds |= {events_pb2.CustomerEventType.Name(e.type)
                  for e in page.events if e.customer_id == survivor.id}
        if not page.events:
            break
        after = page.last_sequence
    check({"CUSTOMER_EVENT_TYPE_MERGED", "CUSTOMER_EVENT_TYPE_UNMERGED"} <= kinds,
          "the survivor's event stream tells of both", got=kinds)

    rep.close()
    sup.close()


def main() -> int:
    return run_example(merge_duplicates, "merge and unmerge")


if __name__ == "__main__":
    sys.exit(main())
