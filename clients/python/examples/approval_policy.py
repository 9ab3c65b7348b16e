#!/usr/bin/env python3
"""Who decides a deletion: routing by team and the two-person rule, with the Python SDK. Also the
SDK's CI test.

    T="crm-service token --tenant demo"
    python examples/approval_policy.py --addr 127.0.0.1:50051 \
        --admin-token "$($T --user ada --role admin)" \
        --rep-token "$($T --user alice --role sales_rep --claim teams=emea)" \
        --apac-supervisor-token "$($T --user pat --role supervisor --claim supervises=apac)" \
        --emea-supervisor-token "$($T --user bob --role supervisor --claim supervises=emea)" \
        --second-emea-supervisor-token "$($T --user eve --role supervisor --claim supervises=emea)"

All five tokens must be of one tenant, which the example changes: an admin reads the tenant's
settings and turns on the two-person rule (open pipeline of at least EUR 10,000.00, an admin among
the approvers) with the settings' etag; the same etag again is ABORTED (ETAG_MISMATCH). A sales rep
of team emea creates a customer with an open deal of exactly EUR 10,000.00; the preview says two
approvals (OPEN_PIPELINE); the rep asks, and the request is routed to emea. A supervisor of apac
may not decide it (NOT_ROUTED_TO_YOU); a supervisor of emea finds it in the inbox and approves: it
stays PENDING, waiting for an admin; the same supervisor again is ALREADY_APPROVED; a second emea
supervisor cannot complete it (ADMIN_APPROVAL_REQUIRED); an admin does: APPROVED, with two
approvals; the rep deletes the customer. At the end (also after a failure) the admin turns the rule
off again, so the tenant is as before and the example can run again. Exits 1 with a message on the
first outcome that differs from what the service promises.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import grpc
from google.protobuf import field_mask_pb2

from crm.v1 import customer_pb2, deletion_pb2, records_pb2, settings_pb2
from crm_client import Client, rich_error
from golden_path import Mismatch, State, check, expect_error

THRESHOLD = settings_pb2.CurrencyAmount(currency="EUR", amount_minor=1_000_000)  # EUR 10,000.00
RULE_MASK = field_mask_pb2.FieldMask(paths=["two_person_rule"])


def set_rule(admin: Client, rule: settings_pb2.TwoPersonRule, etag: str) -> settings_pb2.TenantSettings:
    return admin.settings.UpdateTenantSettings(settings_pb2.UpdateTenantSettingsRequest(
        tenant_settings=settings_pb2.TenantSettings(two_person_rule=rule),
        update_mask=RULE_MASK, etag=etag, request_id=str(uuid.uuid4()))).tenant_settings


def inbox(client: Client) -> list:
    """The ids of the PENDING requests awaiting the caller's decision, oldest first (every page)."""
    ids, token = [], ""
    while True:
        page = client.deletions.ListDeletionRequests(deletion_pb2.ListDeletionRequestsRequest(
            awaiting_my_decision=True, page_size=1000, page_token=token))
        ids += [r.id for r in page.deletion_requests]
        token = page.next_page_token
        if not token:
            return ids


def approve(client: Client, request_id: str, comment: str) -> deletion_pb2.DeletionRequest:
    return client.deletions.ApproveDeletionRequest(deletion_pb2.ApproveDeletionRequestRequest(
        deletion_request_id=request_id, comment=comment)).deletion_request


def approval_policy(admin: Client, rep: Client, apac: Client, emea: Client,
                    emea2: Client) -> None:
    run = uuid.uuid4().hex[:8]  # so the example can run again against the same database

    print("1. the admin reads the tenant settings and turns on the two-person rule")
    expect_error(rep.settings.GetTenantSettings, settings_pb2.GetTenantSettingsRequest(),
                 grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    before = admin.settings.GetTenantSettings(settings_pb2.GetTenantSettingsRequest()).tenant_settings
    print(f"  ..  etag {before.etag!r}"
          + (" (the server's defaults: nobody changed them yet)" if before.etag == "0" else
             f" (changed by {before.updated_by!r} before, e.g. by an earlier run)"))
    check(bool(before.etag), "the settings carry an etag")
    if before.etag == "0":
        check(before.two_person_rule == settings_pb2.TwoPersonRule(),
              "the defaults have the two-person rule off", got=before.two_person_rule)
    rule = settings_pb2.TwoPersonRule(open_pipeline_at_least=[THRESHOLD], admin_required=True)
    after = set_rule(admin, rule, before.etag)
    check(after.two_person_rule == rule, "the rule is EUR 10,000.00 of open pipeline, an admin required",
          got=after.two_person_rule)
    check(after.etag != before.etag, f"a new etag {after.etag!r}", got=after.etag)
    check(after.updated_by != "" and after.HasField("update_time"), "who changed it and when are recorded",
          got=(after.updated_by, after.HasField("update_time")))

    print("   the old etag again: ABORTED, nothing written")
    err = expect_error(admin.settings.UpdateTenantSettings, settings_pb2.UpdateTenantSettingsRequest(
        tenant_settings=settings_pb2.TenantSettings(two_person_rule=settings_pb2.TwoPersonRule()),
        update_mask=RULE_MASK, etag=before.etag, request_id=str(uuid.uuid4())),
        grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    print(f"  ..  metadata {err.metadata}")
    check(err.metadata.get("currentEtag") == after.etag, "metadata currentEtag is the current etag",
          got=err.metadata)
    now = admin.settings.GetTenantSettings(settings_pb2.GetTenantSettingsRequest()).tenant_settings
    check(now.etag == after.etag and now.two_person_rule == rule, "the rule is still on",
          got=(now.etag, now.two_person_rule))

    print("2. a sales rep of team emea: a customer with an open deal of EUR 10,000.00")
    customer = rep.customers.CreateCustomer(customer_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(name=f"Initech {run}",
                                       lifecycle_stage=customer_pb2.LIFECYCLE_STAGE_PROSPECT),
        request_id=str(uuid.uuid4()))).customer
    deal = rep.records.CreateDeal(records_pb2.CreateDealRequest(
        deal=records_pb2.Deal(customer_id=customer.id, title=f"Printers {run}",
                              amount_minor=THRESHOLD.amount_minor, currency="EUR",
                              stage=records_pb2.DEAL_STAGE_OPEN),
        request_id=str(uuid.uuid4()))).deal
    check(deal.amount_minor == 1_000_000 and deal.stage == records_pb2.DEAL_STAGE_OPEN,
          f"deal {deal.id} is OPEN at EUR 10,000.00")

    print("   the preview says two approvals, and why")
    preview = rep.customers.PreviewDeleteCustomer(
        customer_pb2.PreviewDeleteCustomerRequest(customer_id=customer.id)).preview
    for reason in preview.approval_reasons:
        print(f"  ..  {reason.code}: {reason.description}")
    check(not preview.blockers, "nothing blocks", got=list(preview.blockers))
    check(preview.approvals_required == 2 and preview.admin_approval_required,
          "approvals_required 2, an admin among them",
          got=(preview.approvals_required, preview.admin_approval_required))
    check([r.code for r in preview.approval_reasons] == ["OPEN_PIPELINE"], "the reason is OPEN_PIPELINE",
          got=[r.code for r in preview.approval_reasons])

    print("   the rep asks: the request is routed to emea")
    request = rep.deletions.SubmitDeletionRequest(deletion_pb2.SubmitDeletionRequestRequest(
        customer_id=customer.id, preview_etag=preview.etag, reason="test entry",
        request_id=str(uuid.uuid4()))).deletion_request
    check(request.state == State.DELETION_REQUEST_STATE_PENDING, f"request {request.id} is PENDING",
          got=State.Name(request.state))
    check(list(request.approval.routed_to_teams) == ["emea"], "approval.routed_to_teams == ['emea']",
          got=list(request.approval.routed_to_teams))
    check(request.approval.approvals_required == 2 and request.approval.admin_approval_required,
          "the request keeps the rule: 2 approvals, an admin among them",
          got=(request.approval.approvals_required, request.approval.admin_approval_required))
    print(f"  ..  waiting for: {request.approval.waiting_for}")

    print("3. a supervisor of apac may not decide it")
    check(request.id not in inbox(apac), "it is not in the apac supervisor's inbox")
    err = expect_error(apac.deletions.ApproveDeletionRequest,
                       deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id),
                       grpc.StatusCode.PERMISSION_DENIED, "NOT_ROUTED_TO_YOU")
    print(f"  ..  reason {err.reason}, metadata teams={err.metadata.get('teams')!r}")
    check(err.metadata.get("teams") == "emea", "metadata teams names emea", got=err.metadata)

    print("4. a supervisor of emea: the inbox lists it; the first approval leaves it PENDING")
    check(request.id in inbox(emea), "it is in the emea supervisor's inbox")
    request = approve(emea, request.id, "checked with the account owner")
    check(request.state == State.DELETION_REQUEST_STATE_PENDING, "still PENDING",
          got=State.Name(request.state))
    check(len(request.approval.approvals) == 1 and not request.approval.approvals[0].admin, "one approval recorded, not an admin's",
          got=list(request.approval.approvals))
    print(f"  ..  waiting for: {request.approval.waiting_for}")
    check(request.approval.waiting_for == "1 more approval: an admin", "it waits for an admin",
          got=request.approval.waiting_for)
    check(request.id not in inbox(emea), "it left the emea supervisor's inbox")
    expect_error(emea.deletions.ApproveDeletionRequest,
                       deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id),
                       grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_APPROVED")

    print("5. a second supervisor of emea cannot complete it: an admin must")
    check(request.id not in inbox(emea2), "it is not in the second emea supervisor's inbox")
    expect_error(emea2.deletions.ApproveDeletionRequest,
                 deletion_pb2.ApproveDeletionRequestRequest(deletion_request_id=request.id),
                 grpc.StatusCode.PERMISSION_DENIED, "ADMIN_APPROVAL_REQUIRED")
    still = rep.deletions.GetDeletionRequest(
        deletion_pb2.GetDeletionRequestRequest(deletion_request_id=request.id)).deletion_request
    check(still.state == State.DELETION_REQUEST_STATE_PENDING and len(still.approval.approvals) == 1,
          "nothing changed: PENDING with one approval",
          got=(State.Name(still.state), len(still.approval.approvals)))

    print("6. an admin completes it: APPROVED with two approvals; the rep deletes the customer")
    check(request.id in inbox(admin), "it is in the admin's inbox")
    request = approve(admin, request.id, "second pair of eyes")
    check(request.state == State.DELETION_REQUEST_STATE_APPROVED, "APPROVED",
          got=State.Name(request.state))
    for a in request.approval.approvals:
        print(f"  ..  approved by {a.approver_id}{' (admin)' if a.admin else ''}: {a.comment}")
    check([a.admin for a in request.approval.approvals] == [False, True]
          and len({a.approver_id for a in request.approval.approvals}) == 2,
          "two approvals by distinct people, the second an admin's",
          got=[(a.approver_id, a.admin) for a in request.approval.approvals])
    check(request.approval.waiting_for == "", "it waits for nobody", got=request.approval.waiting_for)
    deleted = rep.customers.DeleteCustomer(customer_pb2.DeleteCustomerRequest(
        customer_id=customer.id, deletion_request_id=request.id, etag=preview.etag,
        request_id=str(uuid.uuid4())))
    check(deleted.deleted_records == 1, "the customer is deleted with its deal",
          got=deleted.deleted_records)
    request = rep.deletions.GetDeletionRequest(
        deletion_pb2.GetDeletionRequestRequest(deletion_request_id=request.id)).deletion_request
    check(request.state == State.DELETION_REQUEST_STATE_EXECUTED, "the request is EXECUTED",
          got=State.Name(request.state))


def rule_off(admin: Client) -> None:
    """Turns the two-person rule off again, with the settings' current etag."""
    current = admin.settings.GetTenantSettings(settings_pb2.GetTenantSettingsRequest()).tenant_settings
    if current.two_person_rule == settings_pb2.TwoPersonRule():
        return
    off = set_rule(admin, settings_pb2.TwoPersonRule(), current.etag)
    check(off.two_person_rule == settings_pb2.TwoPersonRule(), "the two-person rule is off again",
          got=off.two_person_rule)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", required=True, help="host:port of crm-service")
    parser.add_argument("--admin-token", required=True, help="JWT with the admin role")
    parser.add_argument("--rep-token", required=True,
                        help="JWT with the sales_rep role and the claim teams=emea")
    parser.add_argument("--apac-supervisor-token", required=True,
                        help="JWT with the supervisor role and the claim supervises=apac")
    parser.add_argument("--emea-supervisor-token", required=True,
                        help="JWT with the supervisor role and the claim supervises=emea")
    parser.add_argument("--second-emea-supervisor-token", required=True,
                        help="JWT of another user with the supervisor role and supervises=emea")
    args = parser.parse_args()
    clients = [Client(args.addr, t) for t in (
        args.admin_token, args.rep_token, args.apac_supervisor_token, args.emea_supervisor_token,
        args.second_emea_supervisor_token)]
    status = 0
    try:
        approval_policy(*clients)
    except Mismatch as e:
        print(f"FAIL: {e}", file=sys.stderr)
        status = 1
    except grpc.RpcError as e:
        print(f"FAIL: unexpected error: {rich_error(e)}", file=sys.stderr)
        status = 1
    finally:  # also after an interruption: the tenant is shared with whoever runs it next
        print("7. leaving the tenant as it was")
        try:
            rule_off(clients[0])
        except Mismatch as e:
            print(f"FAIL: {e}", file=sys.stderr)
            status = 1
        except grpc.RpcError as e:
            print(f"FAIL: could not turn the two-person rule off again: {rich_error(e)}",
                  file=sys.stderr)
            status = 1
        for client in clients:
            client.close()
    if status == 0:
        print("approval policy: OK")
    return status


if __name__ == "__main__":
    sys.exit(main())
