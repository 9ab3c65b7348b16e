//! Moving a record to another customer (MoveContact, MoveDeal, …), black box: the record keeps its
//! id and fields, both customers' graph etags move on (so a deletion previewed on either is
//! stale), both customers' trails and event streams tell of it; who may move, and every refusal.

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_event_service_client::CustomerEventServiceClient;
use tonic::Code;

use crate::common::{
    Bearer, Kind, TestApp, approve, assert_status, bad_fields, create_record, get_customer,
    get_record, list_records, move_record, random_id, request_id,
};

crate::on_both_databases!(
    every_kind_moves_keeping_its_id_and_fields_and_both_graph_etags_move_on,
    a_move_is_audited_and_published_for_both_customers_and_replays_on_its_request_id,
    only_supervisors_admins_and_services_move_and_bad_targets_are_refused_by_field,
    deleted_customers_deleted_records_and_legal_holds_keep_records_where_they_are,
    a_move_makes_a_deletion_previewed_on_either_customer_stale,
);

fn mover(app: &TestApp) -> crate::common::Records {
    app.records_as("acme", "sup-1", &["supervisor"])
}

async fn etag_of(app: &TestApp, customer_id: &str) -> String {
    get_customer(&mut app.customers(), customer_id).await.etag
}

async fn every_kind_moves_keeping_its_id_and_fields_and_both_graph_etags_move_on(app: TestApp) {
    let (from, to) = (
        app.create_customer("Old Employer").await,
        app.create_customer("New Employer").await,
    );
    let mut records = app.records();
    for kind in Kind::ALL {
        let record = create_record(&mut records, kind, &from.id).await.unwrap();
        let (from_etag, to_etag) = (etag_of(&app, &from.id).await, etag_of(&app, &to.id).await);
        let moved = move_record(&mut mover(&app), kind, &record.id, &to.id, &record.etag, "")
            .await
            .unwrap_or_else(|s| panic!("move {kind:?}: {s:?}"));
        assert_eq!(moved.id, record.id, "{kind:?} keeps its id");
        assert_eq!(moved.customer_id, to.id);
        assert_ne!(moved.etag, record.etag, "{kind:?}: a move is a write");
        assert_eq!(
            get_record(&mut records, kind, &record.id).await.unwrap(),
            moved
        );
        assert_ne!(
            etag_of(&app, &from.id).await,
            from_etag,
            "{kind:?}: source graph"
        );
        assert_ne!(
            etag_of(&app, &to.id).await,
            to_etag,
            "{kind:?}: target graph"
        );
        let (at_source, _) = list_records(&mut records, kind, &from.id, 100, "", true)
            .await
            .unwrap();
        let (at_target, _) = list_records(&mut records, kind, &to.id, 100, "", true)
            .await
            .unwrap();
        assert!(at_source.iter().all(|r| r.id != record.id), "{kind:?}");
        assert_eq!(at_target, vec![moved], "{kind:?}");
    }
    // The fields came along untouched: a contact's name is still the one it was created with.
    let (contacts, _) = list_records(&mut records, Kind::Contact, &to.id, 10, "", false)
        .await
        .unwrap();
    let contact = records
        .get_contact(pb::GetContactRequest {
            contact_id: contacts[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(
        contact.full_name,
        crate::common::new_contact(&from.id).full_name
    );
}

async fn a_move_is_audited_and_published_for_both_customers_and_replays_on_its_request_id(
    app: TestApp,
) {
    let (from, to) = (
        app.create_customer("Wrong Account").await,
        app.create_customer("Right Account").await,
    );
    let deal = create_record(&mut app.records(), Kind::Deal, &from.id)
        .await
        .unwrap();
    let key = request_id();
    let moved = move_record(&mut mover(&app), Kind::Deal, &deal.id, &to.id, "", &key)
        .await
        .unwrap();
    // A retry with the same key answers the first answer, and writes nothing again.
    let retried = move_record(&mut mover(&app), Kind::Deal, &deal.id, &to.id, "", &key)
        .await
        .unwrap();
    assert_eq!(retried, moved);
    for customer in [&from.id, &to.id] {
        assert_eq!(
            app.audit_count(customer, "deal.move").await,
            1,
            "{customer}"
        );
    }
    let reused = move_record(&mut mover(&app), Kind::Deal, &deal.id, &from.id, "", &key).await;
    assert_status(reused, Code::InvalidArgument, "REQUEST_ID_REUSED");

    let token = app.token("acme", "consumer", &["service"]);
    let events = CustomerEventServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
        .list_customer_events(pb::ListCustomerEventsRequest {
            after_sequence: 0,
            page_size: 1000,
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let moves: Vec<&str> = events
        .iter()
        .filter(|e| e.record_id == deal.id && e.action == "deal.move")
        .map(|e| {
            assert_eq!(e.r#type(), pb::CustomerEventType::RecordChanged, "{e:?}");
            e.customer_id.as_str()
        })
        .collect();
    assert_eq!(moves, [from.id.as_str(), to.id.as_str()]);
    assert!(app.verify_audit().await.valid);
}

async fn only_supervisors_admins_and_services_move_and_bad_targets_are_refused_by_field(
    app: TestApp,
) {
    let (from, to) = (
        app.create_customer("Source").await,
        app.create_customer("Target").await,
    );
    let contact = create_record(&mut app.records(), Kind::Contact, &from.id)
        .await
        .unwrap();
    let denied = move_record(
        &mut app.records(),
        Kind::Contact,
        &contact.id,
        &to.id,
        "",
        "",
    )
    .await;
    assert_status(denied, Code::PermissionDenied, "ROLE_NOT_ALLOWED");
    for roles in [["admin"], ["service"]] {
        let mut client = app.records_as("acme", "someone", &roles);
        let there = move_record(&mut client, Kind::Contact, &contact.id, &to.id, "", "")
            .await
            .unwrap_or_else(|s| panic!("{roles:?}: {s:?}"));
        move_record(
            &mut client,
            Kind::Contact,
            &contact.id,
            &from.id,
            &there.etag,
            "",
        )
        .await
        .unwrap();
    }

    let mut sup = mover(&app);
    let same = move_record(&mut sup, Kind::Contact, &contact.id, &from.id, "", "").await;
    let status = assert_status(same, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(bad_fields(&status), ["target_customer_id"]);
    assert!(status.message().contains("already belongs"), "{status:?}");
    let garbled = move_record(&mut sup, Kind::Contact, &contact.id, "not-a-uuid", "", "").await;
    assert_eq!(bad_fields(&garbled.unwrap_err()), ["target_customer_id"]);
    let unnamed = move_record(&mut sup, Kind::Contact, "", &to.id, "", "").await;
    assert_eq!(bad_fields(&unnamed.unwrap_err()), ["contact_id"]);
    let nowhere = move_record(&mut sup, Kind::Contact, &contact.id, &random_id(), "", "").await;
    assert_status(nowhere, Code::NotFound, "NOT_FOUND");
    let missing = move_record(&mut sup, Kind::Contact, &random_id(), &to.id, "", "").await;
    assert_status(missing, Code::NotFound, "NOT_FOUND");
    let stale = move_record(&mut sup, Kind::Contact, &contact.id, &to.id, "1", "").await;
    assert_status(stale, Code::Aborted, "ETAG_MISMATCH");

    // Another tenant's customer and record are answered as ids that do not exist.
    let theirs = app
        .customers_as("globex", "rep-1", &["sales_rep"])
        .create_customer(crate::common::new_customer("Globex Customer"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let across = move_record(&mut sup, Kind::Contact, &contact.id, &theirs.id, "", "").await;
    assert_status(across, Code::NotFound, "NOT_FOUND");
    let mut foreign = app.records_as("globex", "sup-2", &["supervisor"]);
    let stolen = move_record(&mut foreign, Kind::Contact, &contact.id, &theirs.id, "", "").await;
    assert_status(stolen, Code::NotFound, "NOT_FOUND");
    let unchanged = get_record(&mut app.records(), Kind::Contact, &contact.id)
        .await
        .unwrap();
    assert_eq!(unchanged.customer_id, from.id);
}

async fn deleted_customers_deleted_records_and_legal_holds_keep_records_where_they_are(
    app: TestApp,
) {
    let (from, to, gone) = (
        app.create_customer("Keeps Its Contact").await,
        app.create_customer("Would Take It").await,
        app.create_customer("Deleted").await,
    );
    let mut records = app.records();
    let contact = create_record(&mut records, Kind::Contact, &from.id)
        .await
        .unwrap();
    let doomed = create_record(&mut records, Kind::Contact, &gone.id)
        .await
        .unwrap();
    app.delete_customer(&gone.id).await;
    let mut sup = mover(&app);
    let onto_deleted = move_record(&mut sup, Kind::Contact, &contact.id, &gone.id, "", "").await;
    assert_status(onto_deleted, Code::FailedPrecondition, "CUSTOMER_DELETED");
    let off_deleted = move_record(&mut sup, Kind::Contact, &doomed.id, &to.id, "", "").await;
    assert_status(off_deleted, Code::FailedPrecondition, "CUSTOMER_DELETED");

    let note = create_record(&mut records, Kind::Activity, &from.id)
        .await
        .unwrap();
    crate::common::delete_record(&mut records, Kind::Activity, &note.id)
        .await
        .expect("activities are deleted one by one")
        .unwrap();
    let deleted = move_record(&mut sup, Kind::Activity, &note.id, &to.id, "", "").await;
    assert_status(deleted, Code::FailedPrecondition, "RECORD_DELETED");

    let hold = |customer_id: String, legal_hold: bool| {
        let mut admin = app.customers_as("acme", "admin-1", &["admin"]);
        async move {
            admin
                .set_legal_hold(pb::SetLegalHoldRequest {
                    customer_id,
                    legal_hold,
                    reason: "case 2026-17".into(),
                    request_id: String::new(),
                })
                .await
                .expect("an admin sets or lifts a legal hold");
        }
    };
    hold(from.id.clone(), true).await;
    let held = move_record(&mut sup, Kind::Contact, &contact.id, &to.id, "", "").await;
    let status = assert_status(held, Code::FailedPrecondition, "LEGAL_HOLD");
    assert!(status.message().contains("legal hold"), "{status:?}");
    // Onto a held customer is fine: the hold keeps what it has, it does not refuse more.
    hold(from.id.clone(), false).await;
    hold(to.id.clone(), true).await;
    move_record(&mut sup, Kind::Contact, &contact.id, &to.id, "", "")
        .await
        .expect("a move onto a held customer");
}

async fn a_move_makes_a_deletion_previewed_on_either_customer_stale(app: TestApp) {
    let (from, to) = (
        app.create_customer("Source Under Review").await,
        app.create_customer("Target Under Review").await,
    );
    let contact = create_record(&mut app.records(), Kind::Contact, &from.id)
        .await
        .unwrap();
    let on_source = app.pending_deletion(&from.id, "duplicate").await;
    let on_target = app.pending_deletion(&to.id, "duplicate").await;
    move_record(&mut mover(&app), Kind::Contact, &contact.id, &to.id, "", "")
        .await
        .unwrap();
    let mut approvals = app.approvals_as("acme", "sup-1", &["supervisor"]);
    for pending in [on_source, on_target] {
        let approved = approve(&mut approvals, &pending.id).await;
        assert_status(approved, Code::FailedPrecondition, "PREVIEW_STALE");
    }
}
