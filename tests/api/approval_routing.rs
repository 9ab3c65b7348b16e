//! Approval routing, black box: a deletion request or batch is routed at submission to the
//! supervisors of the requester's teams (the token's `teams` claim) and to admins. A supervisor
//! decides only one routed to a team their `supervises` claim names, or one routed to no team
//! (NOT_ROUTED_TO_YOU otherwise); nobody decides their own (SELF_APPROVAL_FORBIDDEN, asked before
//! routing); a sales rep decides none (ROLE_NOT_ALLOWED). The policy is the one of submission,
//! whatever the requester's token says later, and `awaiting_my_decision` lists a decider's inbox,
//! oldest first. The two-person thresholds need the tenant settings RPC and are not tested here.

use crm_service::proto::crm::v1 as pb;
use pb::DeletionBatchState as B;
use pb::DeletionRequestState as S;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::batches::{self as batch, Batches, batches_with_claims};
use crate::common::{
    Approvals, TestApp, approve, assert_status, bad_fields, new_contact, reject, submit,
};

crate::on_both_databases!(
    approve_and_reject_follow_the_routing_matrix_of_requester_teams_and_deciders,
    nobody_decides_their_own_request_whatever_their_teams_or_supervises_claims,
    a_requester_without_a_team_claim_is_decided_by_any_supervisor_as_before,
    a_request_keeps_the_teams_it_was_submitted_with_and_deciders_claims_count_when_deciding,
    the_inbox_lists_the_pending_requests_routed_to_the_caller_oldest_first,
    a_batch_is_routed_to_its_requesters_teams_and_listed_in_their_supervisors_inbox,
);

/// A decider of the matrix: who, with which role, supervising which teams (none: no
/// `supervises` claim at all).
struct Decider {
    user: &'static str,
    role: &'static str,
    supervises: &'static [&'static str],
}

const DECIDERS: [Decider; 6] = [
    Decider {
        user: "sup-none",
        role: "supervisor",
        supervises: &[],
    },
    Decider {
        user: "sup-emea",
        role: "supervisor",
        supervises: &["emea"],
    },
    Decider {
        user: "sup-apac",
        role: "supervisor",
        supervises: &["apac"],
    },
    Decider {
        user: "sup-amer",
        role: "supervisor",
        supervises: &["amer"],
    },
    Decider {
        user: "admin-1",
        role: "admin",
        supervises: &[],
    },
    Decider {
        user: "rep-2",
        role: "sales_rep",
        supervises: &[],
    },
];

const OK: Option<&str> = None;
const NOT_ROUTED: Option<&str> = Some("NOT_ROUTED_TO_YOU");
const ROLE: Option<&str> = Some("ROLE_NOT_ALLOWED");

/// Per requester's teams, the outcome for each of `DECIDERS` (in order): allowed, or refused
/// PERMISSION_DENIED with the reason.
const MATRIX: [(&[&str], [Option<&str>; 6]); 3] = [
    (&[], [OK, OK, OK, OK, OK, ROLE]),
    (
        &["emea"],
        [NOT_ROUTED, OK, NOT_ROUTED, NOT_ROUTED, OK, ROLE],
    ),
    (
        &["emea", "apac"],
        [NOT_ROUTED, OK, OK, NOT_ROUTED, OK, ROLE],
    ),
];

/// The token claims of a person of `teams` supervising `supervises` (an empty list: no claim).
fn claims<'a>(
    teams: &'a [&'a str],
    supervises: &'a [&'a str],
) -> Vec<(&'static str, &'a [&'a str])> {
    let mut out = Vec::new();
    if !teams.is_empty() {
        out.push(("teams", teams));
    }
    if !supervises.is_empty() {
        out.push(("supervises", supervises));
    }
    out
}

/// DeletionApprovalService as `user` of `acme`, a `role` of `teams` supervising `supervises`.
fn person(app: &TestApp, user: &str, role: &str, teams: &[&str], supervises: &[&str]) -> Approvals {
    app.approvals_with_claims("acme", user, &[role], &claims(teams, supervises))
}

/// DeletionBatchService likewise.
fn batch_person(
    app: &TestApp,
    user: &str,
    role: &str,
    teams: &[&str],
    supervises: &[&str],
) -> Batches {
    batches_with_claims(app, user, &[role], &claims(teams, supervises))
}

impl Decider {
    fn approvals(&self, app: &TestApp) -> Approvals {
        person(app, self.user, self.role, &[], self.supervises)
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}, supervises {:?})",
            self.user, self.role, self.supervises
        )
    }
}

/// A new customer, previewed, and its deletion submitted by `requester`: the PENDING request.
async fn submitted(app: &TestApp, requester: &mut Approvals, name: &str) -> pb::DeletionRequest {
    let customer = app.create_customer(name).await;
    let preview = app.preview(&customer.id).await;
    submit(requester, &customer.id, &preview.etag, "routing test")
        .await
        .unwrap_or_else(|s| panic!("submit {name}: {s:?}"))
}

fn sorted(teams: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = teams.iter().map(|t| t.to_string()).collect();
    out.sort();
    out
}

fn approval(r: &pb::DeletionRequest) -> &pb::ApprovalStatus {
    r.approval
        .as_ref()
        .expect("a request says how it is routed")
}

fn state(r: &pb::DeletionRequest) -> S {
    S::try_from(r.state).expect("known state")
}

/// The request is PENDING, routed to `teams`, with no approval yet and says whom it waits for.
fn assert_pending_routed(r: &pb::DeletionRequest, teams: &[&str], context: &str) {
    assert_eq!(state(r), S::Pending, "{context}: {r:?}");
    let a = approval(r);
    let mut routed = a.routed_to_teams.clone();
    routed.sort();
    assert_eq!(routed, sorted(teams), "{context}: routed_to_teams");
    assert_eq!(a.approvals_required, 1, "{context}");
    assert!(a.approvals.is_empty(), "{context}: {a:?}");
    assert!(!a.waiting_for.is_empty(), "{context}: waiting_for is empty");
    if teams.is_empty() {
        assert!(
            a.waiting_for.contains("any supervisor"),
            "{context}: {:?}",
            a.waiting_for
        );
    }
    for team in teams {
        assert!(
            a.waiting_for.contains(team),
            "{context}: waiting_for {:?} does not name {team}",
            a.waiting_for
        );
    }
}

/// A refused call: PERMISSION_DENIED with `reason` in its ErrorInfo.
fn refused<T: std::fmt::Debug>(result: Result<T, Status>, reason: &str, context: &str) -> Status {
    let status = match result {
        Ok(v) => panic!("{context}: should be refused with {reason}, got {v:?}"),
        Err(s) => s,
    };
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("{context}: no ErrorInfo in {status:?}"));
    assert_eq!(
        (status.code(), info.reason.as_str()),
        (Code::PermissionDenied, reason),
        "{context}: {status:?}"
    );
    status
}

/// The teams a NOT_ROUTED_TO_YOU refusal names (metadata `teams`), sorted.
fn refused_teams(status: &Status) -> Vec<String> {
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    let teams = info
        .metadata
        .get("teams")
        .unwrap_or_else(|| panic!("no teams in {info:?}"));
    let mut out: Vec<String> = teams
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

async fn approve_and_reject_follow_the_routing_matrix_of_requester_teams_and_deciders(
    app: TestApp,
) {
    for (row, (teams, outcomes)) in MATRIX.iter().enumerate() {
        let requester_id = format!("requester-{row}");
        let mut requester = person(&app, &requester_id, "sales_rep", teams, &[]);
        // The refusals all land on one request, which must come out of them untouched.
        let shared = submitted(&app, &mut requester, &format!("Shared {row}")).await;
        assert_eq!(shared.requester_id, requester_id);
        assert_pending_routed(&shared, teams, &format!("submitted by teams {teams:?}"));
        for (decider, outcome) in DECIDERS.iter().zip(outcomes) {
            let cell = format!("requester teams {teams:?}, decider {}", decider.describe());
            let mut client = decider.approvals(&app);
            match outcome {
                Some(reason) => {
                    let approved = approve(&mut client, &shared.id).await;
                    let status = refused(approved, reason, &format!("{cell}: approve"));
                    let rejected = reject(&mut client, &shared.id, "no").await;
                    refused(rejected, reason, &format!("{cell}: reject"));
                    if *reason == "NOT_ROUTED_TO_YOU" {
                        assert_eq!(refused_teams(&status), sorted(teams), "{cell}");
                    }
                }
                None => {
                    let name = format!("Approved {row} {}", decider.user);
                    let r = submitted(&app, &mut requester, &name).await;
                    let approved = approve(&mut client, &r.id)
                        .await
                        .unwrap_or_else(|s| panic!("{cell}: approve refused: {s:?}"));
                    assert_eq!(state(&approved), S::Approved, "{cell}");
                    assert_eq!(approved.decided_by, decider.user, "{cell}");
                    let a = approval(&approved);
                    assert_eq!(
                        a.approvals
                            .iter()
                            .map(|x| (x.approver_id.as_str(), x.admin))
                            .collect::<Vec<_>>(),
                        [(decider.user, decider.role == "admin")],
                        "{cell}"
                    );
                    assert!(a.approvals[0].approve_time.is_some(), "{cell}");
                    assert_eq!(a.waiting_for, "", "{cell}: waits for nobody once APPROVED");
                    let mut routed = a.routed_to_teams.clone();
                    routed.sort();
                    assert_eq!(
                        routed,
                        sorted(teams),
                        "{cell}: still says whom it was routed to"
                    );
                    // As stored, not only as answered.
                    let read = app.deletion_request(&r.id).await;
                    assert_eq!(
                        (state(&read), read.approval.as_ref()),
                        (S::Approved, Some(a)),
                        "{cell}"
                    );

                    let name = format!("Rejected {row} {}", decider.user);
                    let r = submitted(&app, &mut requester, &name).await;
                    let rejected = reject(&mut client, &r.id, "keep it")
                        .await
                        .unwrap_or_else(|s| panic!("{cell}: reject refused: {s:?}"));
                    assert_eq!(state(&rejected), S::Rejected, "{cell}");
                    assert_eq!(rejected.decided_by, decider.user, "{cell}");
                    assert!(approval(&rejected).approvals.is_empty(), "{cell}");
                    assert_eq!(approval(&rejected).waiting_for, "", "{cell}");
                }
            }
        }
        if !teams.is_empty() {
            // A supervisor who belongs to the requester's teams but supervises none: routing
            // reads the supervises claim, not the teams claim.
            let cell = format!("requester teams {teams:?}, a supervisor member of them");
            let mut member = person(&app, "sup-member", "supervisor", teams, &[]);
            let status = refused(
                approve(&mut member, &shared.id).await,
                "NOT_ROUTED_TO_YOU",
                &cell,
            );
            assert_eq!(refused_teams(&status), sorted(teams), "{cell}");
            refused(
                reject(&mut member, &shared.id, "no").await,
                "NOT_ROUTED_TO_YOU",
                &cell,
            );
        }
        let after = app.deletion_request(&shared.id).await;
        assert_pending_routed(
            &after,
            teams,
            &format!("teams {teams:?} after the refusals"),
        );
        assert_eq!(after.etag, shared.etag, "refusals change nothing");
    }
}

async fn nobody_decides_their_own_request_whatever_their_teams_or_supervises_claims(app: TestApp) {
    let rows: [&[&str]; 3] = [&[], &["emea"], &["emea", "apac"]];
    for (row, teams) in rows.into_iter().enumerate() {
        // Supervising their own team(s) (emea when they have none): routing would let them decide.
        let own: &[&str] = if teams.is_empty() { &["emea"] } else { teams };
        let requesters: [(&str, &str, &[&str]); 4] = [
            ("self-sup", "supervisor", &[]),
            ("self-sup-own", "supervisor", own),
            ("self-admin", "admin", &[]),
            ("self-admin-own", "admin", own),
        ];
        for (user, role, supervises) in requesters {
            let cell = format!("{user} ({role}) of teams {teams:?} supervising {supervises:?}");
            let mut requester = person(&app, user, role, teams, supervises);
            let r = submitted(&app, &mut requester, &format!("Own {row} {user}")).await;
            assert_pending_routed(&r, teams, &cell);
            refused(
                approve(&mut requester, &r.id).await,
                "SELF_APPROVAL_FORBIDDEN",
                &format!("{cell}: approve"),
            );
            refused(
                reject(&mut requester, &r.id, "mine").await,
                "SELF_APPROVAL_FORBIDDEN",
                &format!("{cell}: reject"),
            );
            let read = app.deletion_request(&r.id).await;
            assert_pending_routed(&read, teams, &cell);
            assert_eq!(read.etag, r.etag, "{cell}: nothing changed");
        }
    }
}

async fn a_requester_without_a_team_claim_is_decided_by_any_supervisor_as_before(app: TestApp) {
    // Today's helpers: rep-1 and sup-1 carry no claims at all.
    let customer = app.create_customer("Unrouted").await;
    let approved = app.approved_deletion(&customer.id, "no claims").await;
    assert_eq!(state(&approved), S::Approved);
    let a = approval(&approved);
    assert!(a.routed_to_teams.is_empty(), "{a:?}");
    assert_eq!(a.approvals.len(), 1);
    assert_eq!(a.approvals[0].approver_id, "sup-1");

    let customer = app.create_customer("Unrouted 2").await;
    let pending = app.pending_deletion(&customer.id, "no claims").await;
    assert_pending_routed(&pending, &[], "rep-1 without claims");
    // A supervisor of a team the requester is not in decides it all the same.
    let mut amer = person(&app, "sup-amer", "supervisor", &["amer"], &["amer"]);
    let approved = approve(&mut amer, &pending.id).await.expect("approve");
    assert_eq!(state(&approved), S::Approved);

    // Other claims than the team claim route nothing: `region` is not a team, and the
    // requester's own `supervises` names whom they supervise, not their team.
    let mut requester = app.approvals_with_claims(
        "acme",
        "rep-region",
        &["sales_rep"],
        &[("region", &["emea"]), ("supervises", &["emea"])],
    );
    let r = submitted(&app, &mut requester, "Region only").await;
    assert_pending_routed(&r, &[], "a requester with no teams claim");
    let mut apac = person(&app, "sup-apac", "supervisor", &[], &["apac"]);
    let rejected = reject(&mut apac, &r.id, "keep it").await.expect("reject");
    assert_eq!(state(&rejected), S::Rejected);
}

async fn a_request_keeps_the_teams_it_was_submitted_with_and_deciders_claims_count_when_deciding(
    app: TestApp,
) {
    let mut then = person(&app, "mover", "sales_rep", &["emea"], &[]);
    let first = submitted(&app, &mut then, "Moved").await;
    assert_pending_routed(&first, &["emea"], "submitted from emea");
    // The requester moves to apac: their new token routes their new requests there, and
    // leaves the one made from emea where it was.
    let mut now = person(&app, "mover", "sales_rep", &["apac"], &[]);
    let second = submitted(&app, &mut now, "Moved later").await;
    assert_pending_routed(&second, &["apac"], "submitted from apac");
    let read = now
        .get_deletion_request(pb::GetDeletionRequestRequest {
            deletion_request_id: first.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .deletion_request
        .unwrap();
    assert_pending_routed(&read, &["emea"], "read with the apac token");

    let mut sup_emea = person(&app, "sup-emea", "supervisor", &[], &["emea"]);
    let mut sup_apac = person(&app, "sup-apac", "supervisor", &[], &["apac"]);
    let status = refused(
        approve(&mut sup_apac, &first.id).await,
        "NOT_ROUTED_TO_YOU",
        "apac on the emea request",
    );
    assert_eq!(refused_teams(&status), ["emea"]);
    let status = refused(
        approve(&mut sup_emea, &second.id).await,
        "NOT_ROUTED_TO_YOU",
        "emea on the apac request",
    );
    assert_eq!(refused_teams(&status), ["apac"]);
    // The requester, now a supervisor of emea, is still the requester.
    let mut mover_sup = person(&app, "mover", "supervisor", &["apac"], &["emea"]);
    refused(
        approve(&mut mover_sup, &first.id).await,
        "SELF_APPROVAL_FORBIDDEN",
        "the mover as a supervisor",
    );
    // A decider's claims are read when they decide: sup-late, refused without a supervises
    // claim, decides once their token names emea.
    let mut late = person(&app, "sup-late", "supervisor", &[], &[]);
    refused(
        approve(&mut late, &first.id).await,
        "NOT_ROUTED_TO_YOU",
        "sup-late without a claim",
    );
    let mut late = person(&app, "sup-late", "supervisor", &[], &["amer", "emea"]);
    let approved = approve(&mut late, &first.id).await.expect("approve");
    assert_eq!(state(&approved), S::Approved);
    assert_eq!(approval(&approved).approvals[0].approver_id, "sup-late");
    let approved = approve(&mut sup_apac, &second.id).await.expect("approve");
    assert_eq!(state(&approved), S::Approved);
}

/// Every request of the caller's inbox (for `customer_id`, or any), walking pages of `page_size`
/// (no page larger), and how many pages it took.
async fn inbox(
    client: &mut Approvals,
    customer_id: &str,
    page_size: i32,
) -> Result<(Vec<pb::DeletionRequest>, usize), Status> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    for pages in 1..=100 {
        let page = client
            .list_deletion_requests(pb::ListDeletionRequestsRequest {
                page_size,
                page_token: page_token.clone(),
                state: 0,
                customer_id: customer_id.into(),
                awaiting_my_decision: true,
            })
            .await?
            .into_inner();
        assert!(
            page.deletion_requests.len() <= page_size as usize,
            "a page of {} for page_size {page_size}",
            page.deletion_requests.len()
        );
        out.extend(page.deletion_requests);
        if page.next_page_token.is_empty() {
            return Ok((out, pages));
        }
        page_token = page.next_page_token;
    }
    panic!("the inbox never ends")
}

/// The ids of the caller's whole inbox, checking they come oldest first.
async fn inbox_ids(client: &mut Approvals, customer_id: &str) -> Vec<String> {
    let (requests, _) = inbox(client, customer_id, 100).await.expect("inbox");
    let times: Vec<_> = requests
        .iter()
        .map(|r| {
            let t = r.create_time.expect("create_time");
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    for r in &requests {
        assert_eq!(state(r), S::Pending, "{r:?}");
    }
    requests.into_iter().map(|r| r.id).collect()
}

async fn the_inbox_lists_the_pending_requests_routed_to_the_caller_oldest_first(app: TestApp) {
    // Decided already: in nobody's inbox.
    let mut rep_b = person(&app, "rep-b", "sales_rep", &[], &[]);
    let decided = submitted(&app, &mut rep_b, "Decided").await;
    reject(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &decided.id,
        "no",
    )
    .await
    .expect("reject");
    // Lapsed as read, though stored PENDING: STALE (the graph changed since the preview) and
    // EXPIRED (past its expire_time). Nobody can decide them, so nobody's inbox lists them.
    let stale = submitted(&app, &mut rep_b, "Stale").await;
    app.records()
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(&stale.customer_id)),
            request_id: String::new(),
        })
        .await
        .expect("a contact changes the graph");
    let lapsing = app.create_customer("Lapsed").await;
    let preview = app.preview(&lapsing.id).await;
    submit(&mut rep_b, &lapsing.id, &preview.etag, "inbox lapsed")
        .await
        .expect("submit");
    app.sql(
        "UPDATE deletion_request SET expire_time = create_time \
         WHERE tenant_id = 'acme' AND reason = 'inbox lapsed'",
    )
    .await;
    let requesters: [(&str, &str, &[&str], &[&str]); 6] = [
        ("rep-a", "sales_rep", &["emea"], &[]),
        ("rep-b", "sales_rep", &[], &[]),
        ("rep-c", "sales_rep", &["apac"], &[]),
        ("sup-emea", "supervisor", &["emea"], &["emea"]),
        ("rep-d", "sales_rep", &["emea", "apac"], &[]),
        ("admin-1", "admin", &[], &[]),
    ];
    let mut r = Vec::new();
    for (i, (user, role, teams, supervises)) in requesters.into_iter().enumerate() {
        let mut requester = person(&app, user, role, teams, supervises);
        r.push(submitted(&app, &mut requester, &format!("Inbox {i} {user}")).await);
    }
    let ids =
        |picked: &[usize]| -> Vec<String> { picked.iter().map(|&i| r[i].id.clone()).collect() };
    let mut sup_emea = person(&app, "sup-emea", "supervisor", &["emea"], &["emea"]);
    let mut sup_apac = person(&app, "sup-apac", "supervisor", &[], &["apac"]);
    let mut sup_none = person(&app, "sup-none", "supervisor", &[], &[]);
    let mut admin = person(&app, "admin-1", "admin", &[], &[]);

    // Routed to emea or to no team, not their own (3), oldest first.
    assert_eq!(inbox_ids(&mut sup_emea, "").await, ids(&[0, 1, 4, 5]));
    assert_eq!(inbox_ids(&mut sup_apac, "").await, ids(&[1, 2, 4, 5]));
    assert_eq!(inbox_ids(&mut sup_none, "").await, ids(&[1, 5]));
    // An admin: everything pending but their own (5).
    assert_eq!(inbox_ids(&mut admin, "").await, ids(&[0, 1, 2, 3, 4]));

    // Pages of 2 over the admin's 5: each once, in order, in 3 pages.
    let (paged, pages) = inbox(&mut admin, "", 2).await.expect("paged inbox");
    assert_eq!(
        paged.into_iter().map(|r| r.id).collect::<Vec<_>>(),
        ids(&[0, 1, 2, 3, 4])
    );
    assert_eq!(pages, 3);
    // And for a supervisor, whose inbox the walk filters: 4 in 2 pages.
    let (paged, pages) = inbox(&mut sup_emea, "", 2).await.expect("paged inbox");
    assert_eq!(
        paged.into_iter().map(|r| r.id).collect::<Vec<_>>(),
        ids(&[0, 1, 4, 5])
    );
    assert!((2..=3).contains(&pages), "{pages} pages");

    // The customer filter narrows it, and never lets in what is not routed to the caller.
    assert_eq!(inbox_ids(&mut sup_emea, &r[4].customer_id).await, ids(&[4]));
    assert!(inbox_ids(&mut sup_emea, &r[2].customer_id).await.is_empty());
    assert!(inbox_ids(&mut sup_emea, &r[3].customer_id).await.is_empty());
    for customer in [&decided.customer_id, &stale.customer_id, &lapsing.id] {
        assert!(inbox_ids(&mut sup_emea, customer).await.is_empty());
        assert!(inbox_ids(&mut admin, customer).await.is_empty());
    }

    // state PENDING is the inbox as well; any other state is refused, naming the field.
    let listed = sup_emea
        .list_deletion_requests(pb::ListDeletionRequestsRequest {
            page_size: 100,
            state: S::Pending as i32,
            awaiting_my_decision: true,
            ..Default::default()
        })
        .await
        .expect("inbox with state PENDING")
        .into_inner();
    assert_eq!(
        listed
            .deletion_requests
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        ids(&[0, 1, 4, 5])
    );
    for other in [S::Approved, S::Rejected, S::Cancelled] {
        let status = assert_status(
            sup_emea
                .list_deletion_requests(pb::ListDeletionRequestsRequest {
                    state: other as i32,
                    awaiting_my_decision: true,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), ["state"], "{other:?}");
    }
    // A sales rep has no inbox, though they may list requests.
    let mut rep = person(&app, "rep-a", "sales_rep", &["emea"], &[]);
    refused(
        inbox(&mut rep, "", 10).await,
        "ROLE_NOT_ALLOWED",
        "a sales rep's inbox",
    );
    rep.list_deletion_requests(pb::ListDeletionRequestsRequest::default())
        .await
        .expect("a sales rep lists requests");

    // Approved: out of the approver's inbox and everyone else's.
    approve(&mut sup_emea, &r[0].id).await.expect("approve");
    assert_eq!(inbox_ids(&mut sup_emea, "").await, ids(&[1, 4, 5]));
    assert_eq!(inbox_ids(&mut admin, "").await, ids(&[1, 2, 3, 4]));
    assert_eq!(inbox_ids(&mut sup_apac, "").await, ids(&[1, 2, 4, 5]));
    assert_eq!(inbox_ids(&mut sup_none, "").await, ids(&[1, 5]));
}

/// The batch ids of the caller's batch inbox.
async fn batch_inbox(client: &mut Batches, state: B) -> Result<Vec<String>, Status> {
    let page = client
        .list_deletion_batches(pb::ListDeletionBatchesRequest {
            page_size: 100,
            page_token: String::new(),
            state: state as i32,
            awaiting_my_decision: true,
        })
        .await?
        .into_inner();
    assert!(page.next_page_token.is_empty());
    Ok(page.batches.into_iter().map(|b| b.id).collect())
}

async fn a_batch_is_routed_to_its_requesters_teams_and_listed_in_their_supervisors_inbox(
    app: TestApp,
) {
    let mut submitted = Vec::new();
    for (user, teams) in [("rep-emea", "emea"), ("rep-apac", "apac")] {
        let customer = app.create_customer(&format!("Batch of {teams}")).await;
        let mut requester = batch_person(&app, user, "sales_rep", &[teams], &[]);
        let response = batch::submit(
            &mut requester,
            batch::by_ids(
                std::slice::from_ref(&customer.id),
                &format!("batch of {teams}"),
            ),
        )
        .await
        .unwrap_or_else(|s| panic!("submit the {teams} batch: {s:?}"));
        let b = response.batch.unwrap();
        assert_eq!(batch::batch_state(&b), B::Pending);
        let a = b.approval.as_ref().expect("approval");
        assert_eq!(a.routed_to_teams, [teams]);
        assert!(a.approvals.is_empty());
        assert!(a.waiting_for.contains(teams), "{:?}", a.waiting_for);
        submitted.push(b);
    }
    let (emea, apac) = (&submitted[0], &submitted[1]);
    let mut sup_emea = batch_person(&app, "sup-emea", "supervisor", &[], &["emea"]);
    let mut sup_apac = batch_person(&app, "sup-apac", "supervisor", &[], &["apac"]);
    let mut sup_none = batch_person(&app, "sup-none", "supervisor", &["emea"], &[]);
    let mut admin = batch_person(&app, "admin-1", "admin", &[], &[]);

    assert_eq!(
        batch_inbox(&mut sup_emea, B::Unspecified).await.unwrap(),
        [emea.id.as_str()]
    );
    assert_eq!(
        batch_inbox(&mut sup_emea, B::Pending).await.unwrap(),
        [emea.id.as_str()]
    );
    assert_eq!(
        batch_inbox(&mut sup_apac, B::Unspecified).await.unwrap(),
        [apac.id.as_str()]
    );
    assert!(
        batch_inbox(&mut sup_none, B::Unspecified)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        batch_inbox(&mut admin, B::Unspecified).await.unwrap(),
        [emea.id.as_str(), apac.id.as_str()]
    );
    let status = assert_status(
        batch_inbox(&mut sup_emea, B::Approved).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["state"]);
    refused(
        batch_inbox(&mut batch::rep(&app), B::Unspecified).await,
        "ROLE_NOT_ALLOWED",
        "a sales rep's batch inbox",
    );

    for (what, result) in [
        ("approve", batch::approve(&mut sup_apac, &emea.id).await),
        ("reject", batch::reject(&mut sup_apac, &emea.id, "no").await),
        ("approve", batch::approve(&mut sup_none, &emea.id).await),
    ] {
        let status = refused(
            result,
            "NOT_ROUTED_TO_YOU",
            &format!("{what} the emea batch"),
        );
        assert_eq!(refused_teams(&status), ["emea"]);
    }
    let mut requester_sup = batch_person(&app, "rep-emea", "supervisor", &["emea"], &["emea"]);
    refused(
        batch::approve(&mut requester_sup, &emea.id).await,
        "SELF_APPROVAL_FORBIDDEN",
        "the requester approving their batch",
    );

    let approved = batch::approve(&mut sup_emea, &emea.id)
        .await
        .expect("the emea supervisor approves");
    assert_eq!(batch::batch_state(&approved), B::Approved);
    let a = approved.approval.as_ref().expect("approval");
    assert_eq!(
        a.approvals
            .iter()
            .map(|x| (x.approver_id.as_str(), x.admin))
            .collect::<Vec<_>>(),
        [("sup-emea", false)]
    );
    assert_eq!(a.waiting_for, "");
    assert_eq!(batch::get(&app, &emea.id).await.approval, approved.approval);

    assert!(
        batch_inbox(&mut sup_emea, B::Unspecified)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        batch_inbox(&mut admin, B::Unspecified).await.unwrap(),
        [apac.id.as_str()]
    );
}
