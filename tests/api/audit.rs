//! The audit trail (docs/reliability.md A8, A9): one hash chain per tenant that stays linear under
//! concurrent writers; tampering with the stored rows — a field edited, a row deleted, two rows
//! swapped, a row forged after the head — is reported at the right sequence, each in a fresh app;
//! summaries carry no personal data; only supervisors and admins read it; listing filters and
//! paginates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use crm_service::domain::audit::{AuditEvent, chain_hash};
use crm_service::proto::crm::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::common::{
    Db, TestApp, assert_status, bad_fields, bare_customer, execute, figure, mask, new_contact,
    new_deal, request_id, restore,
};

crate::on_both_databases!(
    the_chain_verifies_after_concurrent_writers_in_two_tenants,
    editing_any_field_of_an_event_breaks_the_chain_at_its_sequence,
    deleting_an_event_breaks_the_chain_at_its_sequence,
    swapping_two_events_breaks_the_chain_at_the_first_of_them,
    an_event_forged_after_the_recorded_head_breaks_the_chain,
    no_customer_name_phone_or_email_reaches_the_audit_trail,
    sales_reps_and_services_cannot_read_the_audit_trail,
    list_audit_events_filters_by_customer_action_and_time_and_paginates,
    the_server_s_vacuum_of_the_head_table_runs_on_postgres_only,
);

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Checks what a client can check of a listing: sequences 1..=n without gaps, each event linked
/// to the one before, the head at the last event.
fn assert_linked(events: &[pb::AuditEvent], verdict: &pb::VerifyAuditChainResponse) {
    let mut previous = ZERO_HASH.to_owned();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, i as i64 + 1, "no gap, no fork");
        assert_eq!(event.previous_hash, previous, "sequence {}", event.sequence);
        assert_eq!(event.hash.len(), 64);
        previous = event.hash.clone();
    }
    assert_eq!(verdict.head_sequence, events.len() as i64);
    assert_eq!(verdict.head_hash, previous);
}

async fn the_chain_verifies_after_concurrent_writers_in_two_tenants(app: TestApp) {
    const TASKS: usize = 8;
    const MUTATIONS: usize = 25;
    const GLOBEX_TASKS: usize = 2;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS + GLOBEX_TASKS {
        let tenant = if t < TASKS { "acme" } else { "globex" };
        let user = format!("writer-{t}");
        let mut customers = app.customers_as(tenant, &user, &["sales_rep"]);
        let mut records = app.records_as(tenant, &user, &["sales_rep"]);
        tasks.push(tokio::spawn(async move {
            // One audited mutation per call: a create, then record creates and updates and
            // customer updates, interleaved with the other tasks'.
            let customer = customers
                .create_customer(bare_customer(&format!("Audited {t}")))
                .await?
                .into_inner()
                .customer
                .unwrap();
            let mut contact = String::new();
            for i in 1..MUTATIONS {
                match i % 3 {
                    0 | 1 if contact.is_empty() || i % 3 == 1 => {
                        contact = records
                            .create_contact(pb::CreateContactRequest {
                                contact: Some(new_contact(&customer.id)),
                                request_id: String::new(),
                            })
                            .await?
                            .into_inner()
                            .contact
                            .unwrap()
                            .id;
                    }
                    0 => {
                        crate::common::touch_record(
                            &mut records,
                            crate::common::Kind::Contact,
                            &contact,
                        )
                        .await?;
                    }
                    _ => {
                        customers
                            .update_customer(pb::UpdateCustomerRequest {
                                customer: Some(pb::Customer {
                                    id: customer.id.clone(),
                                    industry: format!("industry {i}"),
                                    ..Default::default()
                                }),
                                update_mask: mask(&["industry"]),
                                ..Default::default()
                            })
                            .await?;
                    }
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    // Verification while the chain grows: events appended during a walk are not forgeries.
    let writing = Arc::new(AtomicBool::new(true));
    let verifier = {
        let (mut audit, writing) = (app.audit(), writing.clone());
        tokio::spawn(async move {
            let mut verdicts = 0;
            while writing.load(Ordering::Acquire) {
                let verdict = audit
                    .verify_audit_chain(pb::VerifyAuditChainRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                assert!(verdict.valid, "while writing: {verdict:?}");
                verdicts += 1;
            }
            verdicts
        })
    };
    for task in tasks {
        task.await
            .unwrap()
            .expect("every audited mutation succeeds");
    }
    let elapsed = started.elapsed();
    writing.store(false, Ordering::Release);
    let verdicts = verifier.await.unwrap();
    for (tenant, writers) in [("acme", TASKS), ("globex", GLOBEX_TASKS)] {
        let verdict = app
            .audit_as(tenant, "auditor", &["supervisor"])
            .verify_audit_chain(pb::VerifyAuditChainRequest {})
            .await
            .unwrap()
            .into_inner();
        let expected = (writers * MUTATIONS) as i64;
        assert!(verdict.valid, "{tenant}: {verdict:?}");
        assert_eq!(verdict.first_broken_sequence, 0);
        assert_eq!(verdict.events_checked, expected, "{tenant}");
        let mut audit = app.audit_as(tenant, "auditor", &["admin"]);
        let events = audit
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(events.len() as i64, expected, "{tenant}");
        assert_linked(&events, &verdict);
    }
    figure(format_args!(
        "{:?} A8a: {TASKS} acme + {GLOBEX_TASKS} globex writers x {MUTATIONS} audited mutations \
         in {elapsed:?}: {} acme events, chain valid, contiguous, no fork; {verdicts} \
         verifications during the writes, all valid",
        app.db,
        TASKS * MUTATIONS
    ));
}

/// A small history with every kind of event: returns it as listed.
async fn history(app: &TestApp) -> Vec<pb::AuditEvent> {
    let customer = app.create_customer("Chained").await;
    let c = customer.id.as_str();
    let mut r = app.records();
    let contact = r
        .create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(c)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    r.update_contact(pb::UpdateContactRequest {
        contact: Some(pb::Contact {
            id: contact.id,
            job_title: "CFO".into(),
            ..Default::default()
        }),
        update_mask: mask(&["job_title"]),
        etag: String::new(),
        request_id: request_id(),
    })
    .await
    .unwrap();
    app.delete_customer(c).await;
    restore(
        &mut app.customers_as("acme", "sup-2", &["supervisor"]),
        c,
        false,
    )
    .await
    .unwrap();
    let other = app.create_customer("Chained Too").await;
    r.create_deal(pb::CreateDealRequest {
        deal: Some(new_deal(&other.id, pb::DealStage::Open)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    let events = app.audit_events(Default::default()).await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "customer.create",
            "contact.create",
            "contact.update",
            "deletion_request.submit",
            "deletion_request.approve",
            "customer.delete",
            "customer.restore",
            "customer.create",
            "deal.create",
        ]
    );
    let verdict = app.verify_audit().await;
    assert!(verdict.valid, "{verdict:?}");
    assert_linked(&events, &verdict);
    events
}

/// A fresh app on `db` (the first tamper case may use the test's own).
async fn fresh(db: Db) -> TestApp {
    TestApp::spawn(db)
        .await
        .expect("PostgreSQL was reachable a moment ago")
}

async fn assert_broken_at(app: &TestApp, sequence: i64, what: &str) {
    let verdict = app.verify_audit().await;
    assert!(
        !verdict.valid,
        "{what}: tampering not detected: {verdict:?}"
    );
    assert_eq!(
        verdict.first_broken_sequence, sequence,
        "{what}: {verdict:?}"
    );
    assert!(!verdict.problem.is_empty(), "{what}");
}

async fn editing_any_field_of_an_event_breaks_the_chain_at_its_sequence(app: TestApp) {
    // Event 3 is the contact update: a record event with a request_id, so every field differs
    // from what each edit writes.
    const N: i64 = 3;
    let edits = [
        "summary = 'x'",
        "actor = 'mallory'",
        "action = action || 'x'",
        "target_type = target_type || 'x'",
        "trace_id = trace_id || 'x'",
        "target_id = customer_id",
        "customer_id = NULL",
        "request_id = NULL",
        "time = (SELECT e.time FROM audit_event e WHERE e.tenant_id = 'acme' AND e.sequence = 1)",
        "previous_hash = hash",
        "hash = previous_hash",
        "tenant_id = 'globex'",
    ];
    let db = app.db;
    let mut app = Some(app);
    let mut detected = 0;
    for edit in edits {
        let app = match app.take() {
            Some(app) => app,
            None => fresh(db).await,
        };
        let events = history(&app).await;
        let event = &events[N as usize - 1];
        assert_eq!(event.action, "contact.update");
        assert!(!event.request_id.is_empty() && event.target_id != event.customer_id);
        app.sql(&format!(
            "UPDATE audit_event SET {edit} WHERE tenant_id = 'acme' AND sequence = {N}"
        ))
        .await;
        assert_broken_at(&app, N, edit).await;
        detected += 1;
    }
    figure(format_args!(
        "{db:?} A8b: field edits detected at their sequence: {detected}/{}",
        edits.len()
    ));
}

async fn deleting_an_event_breaks_the_chain_at_its_sequence(app: TestApp) {
    let db = app.db;
    let mut app = Some(app);
    // The first, one in the middle, and the last (a truncated tail).
    for which in ["first", "middle", "last"] {
        let app = match app.take() {
            Some(app) => app,
            None => fresh(db).await,
        };
        let events = history(&app).await;
        let sequence = match which {
            "first" => 1,
            "middle" => 5,
            _ => events.len() as i64,
        };
        app.sql(&format!(
            "DELETE FROM audit_event WHERE tenant_id = 'acme' AND sequence = {sequence}"
        ))
        .await;
        assert_broken_at(&app, sequence, which).await;
    }
}

async fn swapping_two_events_breaks_the_chain_at_the_first_of_them(app: TestApp) {
    history(&app).await;
    // Three steps: the primary key is checked row by row on PostgreSQL.
    for statement in [
        "UPDATE audit_event SET sequence = -1 WHERE tenant_id = 'acme' AND sequence = 4",
        "UPDATE audit_event SET sequence = 4 WHERE tenant_id = 'acme' AND sequence = 7",
        "UPDATE audit_event SET sequence = 7 WHERE tenant_id = 'acme' AND sequence = -1",
    ] {
        app.sql(statement).await;
    }
    let listed: Vec<String> = app
        .audit_events(Default::default())
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(listed[3], "customer.restore", "the swap took");
    assert_broken_at(&app, 4, "swap 4 and 7").await;
}

fn timestamp_of(event: &pb::AuditEvent) -> DateTime<Utc> {
    let t = event.time.unwrap();
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

fn optional_uuid(text: &str) -> Option<Uuid> {
    (!text.is_empty()).then(|| Uuid::parse_str(text).unwrap())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn an_event_forged_after_the_recorded_head_breaks_the_chain(app: TestApp) {
    let db = app.db;
    // A forged row appended after the last event, perfectly chained (the hash needs no secret):
    // only the recorded head betrays it. It shows up in listings, so verification must judge it.
    let events = history(&app).await;
    let last = events.last().unwrap();
    let forged_sequence = last.sequence + 1;
    let mut previous = [0u8; 32];
    for (i, byte) in previous.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&last.hash[2 * i..2 * i + 2], 16).unwrap();
    }
    let forged = AuditEvent {
        tenant: "acme".into(),
        sequence: forged_sequence,
        time: timestamp_of(last),
        actor: "mallory".into(),
        action: last.action.clone(),
        target_type: last.target_type.clone(),
        target_id: Uuid::parse_str(&last.target_id).unwrap(),
        customer_id: optional_uuid(&last.customer_id),
        request_id: optional_uuid(&last.request_id),
        trace_id: last.trace_id.clone(),
        summary: "forged".into(),
        previous_hash: previous,
        hash: [0; 32],
    };
    let hash = hex(&chain_hash(&previous, &forged));
    app.sql(&format!(
        "INSERT INTO audit_event (tenant_id, sequence, time, actor, action, target_type, \
         target_id, customer_id, request_id, trace_id, summary, previous_hash, hash) \
         SELECT tenant_id, {forged_sequence}, time, 'mallory', action, target_type, target_id, \
         customer_id, request_id, trace_id, 'forged', hash, '{hash}' \
         FROM audit_event WHERE tenant_id = 'acme' AND sequence = {}",
        last.sequence
    ))
    .await;
    let listed = app.audit_events(Default::default()).await;
    assert_eq!(
        listed.last().unwrap().summary,
        "forged",
        "the forgery is listed"
    );
    assert_broken_at(&app, forged_sequence, "a forged event after the head").await;

    // The head row itself removed: every event now lies beyond it.
    let app = fresh(db).await;
    history(&app).await;
    app.sql("DELETE FROM audit_head WHERE tenant_id = 'acme'")
        .await;
    assert_broken_at(&app, 1, "the head row deleted").await;
}

async fn no_customer_name_phone_or_email_reaches_the_audit_trail(app: TestApp) {
    let tag = Uuid::now_v7().simple().to_string();
    let tag = &tag[tag.len() - 10..];
    let markers = [
        format!("Markername {tag}"),
        format!("marker.{tag}@example.com"),
        "+1 555 7319 2468".to_owned(),
        format!("Renamed {tag}"),
        format!("renamed.{tag}@example.org"),
        "+44 20 7946 0958".to_owned(),
        format!("Contactname {tag}"),
        format!("contact.{tag}@example.net"),
        "+33 1 4020 5060".to_owned(),
        format!("Reason {tag}"),
        format!("Comment {tag}"),
    ];
    let mut rep = app.customers();
    let mut request = bare_customer(&markers[0]);
    {
        let c = request.customer.as_mut().unwrap();
        c.email = markers[1].clone();
        c.phone = markers[2].clone();
    }
    let customer = rep
        .create_customer(request)
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let c = customer.id.as_str();
    rep.update_customer(pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            id: c.into(),
            name: markers[3].clone(),
            email: markers[4].clone(),
            phone: markers[5].clone(),
            ..Default::default()
        }),
        update_mask: mask(&["name", "email", "phone"]),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut r = app.records();
    let contact = r
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                customer_id: c.into(),
                full_name: markers[6].clone(),
                email: markers[7].clone(),
                phone: markers[8].clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    r.update_contact(pb::UpdateContactRequest {
        contact: Some(pb::Contact {
            id: contact.id,
            full_name: format!("{} Jr", markers[6]),
            ..Default::default()
        }),
        update_mask: mask(&["full_name"]),
        ..Default::default()
    })
    .await
    .unwrap();
    // The full lifecycle, with free text in the reason and the comments.
    let preview = app.preview(c).await;
    let mut rep_approvals = app.approvals_as("acme", "rep-1", &["sales_rep"]);
    let rejected = crate::common::submit(&mut rep_approvals, c, &preview.etag, &markers[9])
        .await
        .unwrap();
    crate::common::reject(
        &mut app.approvals_as("acme", "sup-1", &["supervisor"]),
        &rejected.id,
        &markers[10],
    )
    .await
    .unwrap();
    let pending = crate::common::submit(&mut rep_approvals, c, &preview.etag, &markers[9])
        .await
        .unwrap();
    app.approvals_as("acme", "sup-1", &["supervisor"])
        .approve_deletion_request(pb::ApproveDeletionRequestRequest {
            deletion_request_id: pending.id.clone(),
            comment: markers[10].clone(),
            request_id: request_id(),
        })
        .await
        .unwrap();
    execute(&mut rep, c, &pending.id, &preview.etag)
        .await
        .unwrap();
    restore(
        &mut app.customers_as("acme", "sup-2", &["supervisor"]),
        c,
        false,
    )
    .await
    .unwrap();

    let events = app.audit_events(Default::default()).await;
    assert!(events.len() >= 10, "{events:?}");
    let needles: Vec<String> = markers
        .iter()
        .flat_map(|m| {
            let digits: String = m.chars().filter(char::is_ascii_digit).collect();
            let mut forms = vec![m.to_lowercase()];
            if m.starts_with('+') {
                forms.push(digits);
            }
            forms
        })
        .collect();
    let mut hits = Vec::new();
    for event in &events {
        let text = format!(
            "{} {} {} {} {} {} {}",
            event.actor,
            event.action,
            event.target_type,
            event.target_id,
            event.customer_id,
            event.trace_id,
            event.summary
        )
        .to_lowercase();
        for needle in &needles {
            if text.contains(needle.as_str()) {
                hits.push((event.sequence, needle.clone(), event.summary.clone()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "personal data in the audit trail: {hits:?}"
    );
    figure(format_args!(
        "{:?} A9: {} audit events scanned for {} marker forms after a full lifecycle: hits = 0",
        app.db,
        events.len(),
        needles.len()
    ));
}

async fn sales_reps_and_services_cannot_read_the_audit_trail(app: TestApp) {
    app.create_customer("Audited").await;
    for (user, role) in [("rep-1", "sales_rep"), ("svc-1", "service")] {
        let mut audit = app.audit_as("acme", user, &[role]);
        assert_status(
            audit
                .list_audit_events(pb::ListAuditEventsRequest::default())
                .await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
        assert_status(
            audit
                .verify_audit_chain(pb::VerifyAuditChainRequest {})
                .await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    for (user, role) in [("sup-1", "supervisor"), ("adm-1", "admin")] {
        let mut audit = app.audit_as("acme", user, &[role]);
        let events = audit
            .list_audit_events(pb::ListAuditEventsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert_eq!(events.len(), 1);
        assert!(
            audit
                .verify_audit_chain(pb::VerifyAuditChainRequest {})
                .await
                .unwrap()
                .into_inner()
                .valid
        );
    }
    // Another tenant's supervisor sees a chain of its own, empty.
    let mut globex = app.audit_as("globex", "gsup", &["supervisor"]);
    let listed = globex
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.audit_events.is_empty());
    let verdict = globex
        .verify_audit_chain(pb::VerifyAuditChainRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((verdict.valid, verdict.head_sequence), (true, 0));
}

async fn list_audit_events_filters_by_customer_action_and_time_and_paginates(app: TestApp) {
    let mut r = app.records();
    let a = app.create_customer("Listed A").await;
    for _ in 0..3 {
        r.create_contact(pb::CreateContactRequest {
            contact: Some(new_contact(&a.id)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    let b = app.create_customer("Listed B").await;
    for _ in 0..2 {
        r.create_deal(pb::CreateDealRequest {
            deal: Some(new_deal(&b.id, pb::DealStage::Won)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    }
    r.create_contact(pb::CreateContactRequest {
        contact: Some(new_contact(&b.id)),
        request_id: String::new(),
    })
    .await
    .unwrap();
    app.create_customer("Listed C").await;
    let all = app.audit_events(Default::default()).await;
    assert_eq!(all.len(), 1 + 3 + 1 + 2 + 1 + 1);

    let mut audit = app.audit();
    let mut walk = async |filter: pb::ListAuditEventsRequest| {
        let mut request = filter;
        let (mut out, mut pages) = (Vec::new(), 0);
        loop {
            let page = audit
                .list_audit_events(request.clone())
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.audit_events.len() <= request.page_size as usize);
            out.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                return (out, pages);
            }
            request.page_token = page.next_page_token;
        }
    };
    let (paged, pages) = walk(pb::ListAuditEventsRequest {
        page_size: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(
        paged, all,
        "pages of 2 add up to the whole trail, in sequence order"
    );
    assert_eq!(pages, all.len().div_ceil(2));

    let of = |pred: &dyn Fn(&pb::AuditEvent) -> bool| -> Vec<pb::AuditEvent> {
        all.iter().filter(|e| pred(e)).cloned().collect()
    };
    let (by_customer, pages) = walk(pb::ListAuditEventsRequest {
        page_size: 1,
        customer_id: a.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_customer, of(&|e| e.customer_id == a.id));
    assert_eq!((by_customer.len(), pages), (4, 4));
    let (by_action, _) = walk(pb::ListAuditEventsRequest {
        page_size: 3,
        action: "contact.create".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_action, of(&|e| e.action == "contact.create"));
    assert_eq!(by_action.len(), 4);
    let (both, _) = walk(pb::ListAuditEventsRequest {
        page_size: 10,
        customer_id: b.id.clone(),
        action: "contact.create".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        both,
        of(&|e| e.customer_id == b.id && e.action == "contact.create")
    );
    assert_eq!(both.len(), 1);
    // [start_time, end_time): from the second event's time up to (not including) the sixth's.
    let (window, _) = walk(pb::ListAuditEventsRequest {
        page_size: 2,
        start_time: all[1].time,
        end_time: all[5].time,
        ..Default::default()
    })
    .await;
    assert_eq!(window, all[1..5].to_vec());

    // A page token belongs to its filters.
    let first = audit
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1,
            customer_id: a.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = assert_status(
        audit
            .list_audit_events(pb::ListAuditEventsRequest {
                page_size: 1,
                customer_id: b.id.clone(),
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    assert_eq!(bad_fields(&status), ["page_token"]);
}

/// The head table every audited write updates is vacuumed by the server on PostgreSQL (and kept
/// HOT by m0018's fillfactor); SQLite updates in place and has nothing to vacuum.
async fn the_server_s_vacuum_of_the_head_table_runs_on_postgres_only(app: TestApp) {
    for n in 0..20 {
        app.create_customer(&format!("Head {n}")).await;
    }
    let store = app.store().await;
    let vacuumed = crm_service::store::audit::vacuum_heads(store.conn())
        .await
        .expect("vacuum");
    assert_eq!(vacuumed, app.db == crate::common::Db::Postgres);
    if !vacuumed {
        return;
    }
    use sea_orm::ConnectionTrait as _;
    let row = store
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT (s.last_vacuum IS NOT NULL)::text AS vacuumed, \
             array_to_string(c.reloptions, ',') AS options \
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.relname = 'audit_head' AND s.schemaname = current_schema()",
        ))
        .await
        .expect("stats")
        .expect("the head table of this schema");
    let vacuumed: String = row.try_get("", "vacuumed").unwrap();
    let options: String = row.try_get("", "options").unwrap();
    assert_eq!(vacuumed, "true");
    assert!(options.contains("fillfactor=10"), "{options}");
}
