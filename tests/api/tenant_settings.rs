//! TenantSettingsService: a tenant's settings, read and changed by its admins with an etag, every
//! change audited, applied to what happens after the change (docs/design.md "Tenant settings").

use std::time::Duration;

use crm_service::domain::deletion::LifecycleSettings;
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::tenant_settings_service_client::TenantSettingsServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;
use crate::on_both_databases;

on_both_databases!(
    a_tenant_that_never_changed_its_settings_has_the_servers,
    a_new_retention_applies_to_deletions_after_the_change_only,
    a_new_request_lifetime_applies_to_requests_submitted_after_it,
    the_phone_default_country_is_the_tenants,
    only_admins_read_or_change_the_settings,
    a_stale_etag_is_aborted_and_writes_nothing,
    every_rule_names_the_field_it_refuses,
    another_tenants_settings_are_untouched_and_unreachable,
    a_change_is_in_the_audit_trail,
);

type Settings = TenantSettingsServiceClient<AuthedChannel>;

const DAY: u64 = 24 * 3600;

fn settings_as(app: &TestApp, tenant: &str, user: &str, roles: &[&str]) -> Settings {
    let token = app.token(tenant, user, roles);
    TenantSettingsServiceClient::with_interceptor(app.channel(), Bearer::new(&token))
}

/// The settings client of `admin-1`, an admin of `acme`.
fn admin(app: &TestApp) -> Settings {
    settings_as(app, "acme", "admin-1", &["admin"])
}

fn duration(secs: u64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: secs as i64,
        nanos: 0,
    })
}

fn seconds(d: &Option<prost_types::Duration>) -> i64 {
    let d = d.as_ref().expect("a duration");
    assert_eq!(d.nanos, 0);
    d.seconds
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("a timestamp");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

async fn get(client: &mut Settings) -> Result<pb::TenantSettings, tonic::Status> {
    Ok(client
        .get_tenant_settings(pb::GetTenantSettingsRequest {})
        .await?
        .into_inner()
        .tenant_settings
        .expect("settings"))
}

async fn update(
    client: &mut Settings,
    settings: pb::TenantSettings,
    paths: &[&str],
    etag: &str,
) -> Result<pb::TenantSettings, tonic::Status> {
    Ok(client
        .update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant_settings: Some(settings),
            update_mask: mask(paths),
            etag: etag.into(),
            request_id: request_id(),
        })
        .await?
        .into_inner()
        .tenant_settings
        .expect("settings"))
}

/// Sets acme's retention to `days` as its admin, from the defaults.
async fn set_retention(app: &TestApp, days: u64) -> pb::TenantSettings {
    let mut client = admin(app);
    let current = get(&mut client).await.expect("get");
    let wanted = pb::TenantSettings {
        retention: duration(days * DAY),
        ..current.clone()
    };
    update(&mut client, wanted, &["retention"], &current.etag)
        .await
        .expect("retention changed")
}

async fn a_tenant_that_never_changed_its_settings_has_the_servers(app: TestApp) {
    let defaults = LifecycleSettings::default();
    let s = get(&mut admin(&app)).await.expect("an admin reads them");
    assert_eq!(s.etag, "0");
    assert_eq!(seconds(&s.retention), defaults.retention.as_secs() as i64);
    assert_eq!(
        seconds(&s.request_ttl),
        defaults.request_ttl.as_secs() as i64
    );
    assert_eq!(s.escalate_after, None);
    assert_eq!(s.teams_claim, "teams");
    assert_eq!(s.supervises_claim, "supervises");
    // The test server's --phone-default-country-code.
    assert_eq!(s.phone_default_country_code, "44");
    assert_eq!(s.two_person_rule, Some(pb::TwoPersonRule::default()));
    assert_eq!(s.update_time, None);
    assert_eq!(s.updated_by, "");
}

async fn a_new_retention_applies_to_deletions_after_the_change_only(app: TestApp) {
    let before = app.create_customer("Deleted Before").await;
    let after = app.create_customer("Deleted After").await;
    let with_contact = app.create_customer("Keeps A Contact").await;
    let mut records = app.records();
    let contact = create_record(&mut records, Kind::Contact, &with_contact.id)
        .await
        .expect("contact");
    let old = app.delete_customer(&before.id).await.customer.unwrap();
    let old_retention = LifecycleSettings::default().retention.as_secs() as i64;
    assert_eq!(
        micros(&old.purge_time) - micros(&old.delete_time),
        old_retention * 1_000_000
    );

    let changed = set_retention(&app, 7).await;
    assert_eq!(changed.etag, "1");
    assert_eq!(seconds(&changed.retention), (7 * DAY) as i64);
    app.advance_clock(Duration::from_secs(3600));

    let new = app.delete_customer(&after.id).await.customer.unwrap();
    assert_eq!(
        micros(&new.purge_time) - micros(&new.delete_time),
        (7 * DAY * 1_000_000) as i64,
        "a customer deleted after the change is kept for the new retention"
    );
    let deleted_contact = records
        .delete_contact(pb::DeleteContactRequest {
            contact_id: contact.id,
            etag: contact.etag,
            request_id: request_id(),
        })
        .await
        .expect("a contact deleted on its own")
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(
        micros(&deleted_contact.purge_time) - micros(&deleted_contact.delete_time),
        (7 * DAY * 1_000_000) as i64,
        "so is a record deleted on its own"
    );
    let mut supervisor = app.customers_as("acme", "sup-1", &["supervisor"]);
    let still = get_customer(&mut supervisor, &before.id).await;
    assert_eq!(
        still.purge_time, old.purge_time,
        "a deletion keeps the purge time it was made with"
    );
}

async fn a_new_request_lifetime_applies_to_requests_submitted_after_it(app: TestApp) {
    let early = app.create_customer("Requested Before").await;
    let late = app.create_customer("Requested After").await;
    let first = app.pending_deletion(&early.id, "duplicate").await;
    let mut client = admin(&app);
    let current = get(&mut client).await.unwrap();
    let wanted = pb::TenantSettings {
        request_ttl: duration(5 * 3600),
        ..current
    };
    update(&mut client, wanted, &["request_ttl"], "0")
        .await
        .expect("request_ttl changed");

    let second = app.pending_deletion(&late.id, "duplicate").await;
    assert_eq!(
        micros(&second.expire_time) - micros(&second.create_time),
        5 * 3600 * 1_000_000
    );
    let first_again = app.deletion_request(&first.id).await;
    assert_eq!(
        first_again.expire_time, first.expire_time,
        "a request keeps the lifetime it was submitted under"
    );
    assert_eq!(
        micros(&first.expire_time) - micros(&first.create_time),
        LifecycleSettings::default().request_ttl.as_secs() as i64 * 1_000_000
    );
}

/// Whether the national number is among the international one's duplicate candidates, by phone.
async fn phones_match(app: &TestApp, international: &str, national: &str) -> bool {
    let mut customers = app.customers();
    let page = customers
        .list_duplicate_candidates(pb::ListDuplicateCandidatesRequest {
            customer_id: international.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .expect("candidates")
        .into_inner();
    page.candidates.iter().any(|c| {
        c.customer.as_ref().unwrap().id == national
            && c.matches().any(|m| m == pb::DuplicateMatch::Phone)
    })
}

async fn the_phone_default_country_is_the_tenants(app: TestApp) {
    let mut customers = app.customers();
    let create = |name: &str, phone: &str| {
        let mut request = new_customer(name);
        request.customer.as_mut().unwrap().phone = phone.into();
        request
    };
    let international = customers
        .create_customer(create("Ringing Abroad", "+44 20 7946 0000"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    let national = customers
        .create_customer(create("Ringing At Home", "020 7946 0000"))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    // The server's default country, 44, makes them one number.
    assert!(phones_match(&app, &international.id, &national.id).await);

    let mut client = admin(&app);
    let current = get(&mut client).await.unwrap();
    let wanted = pb::TenantSettings {
        phone_default_country_code: "1".into(),
        ..current
    };
    update(&mut client, wanted, &["phone_default_country_code"], "0")
        .await
        .expect("country changed");
    assert!(
        !phones_match(&app, &international.id, &national.id).await,
        "under the tenant's country 1, 020 7946 0000 is +1 20 7946 0000"
    );
}

async fn only_admins_read_or_change_the_settings(app: TestApp) {
    for role in ["supervisor", "sales_rep", "service"] {
        let mut client = settings_as(&app, "acme", "someone", &[role]);
        assert_status(
            get(&mut client).await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
        let wanted = pb::TenantSettings {
            retention: duration(DAY),
            ..Default::default()
        };
        assert_status(
            update(&mut client, wanted, &["retention"], "").await,
            Code::PermissionDenied,
            "ROLE_NOT_ALLOWED",
        );
    }
    let s = get(&mut admin(&app)).await.unwrap();
    assert_eq!(s.etag, "0", "nothing was written");
}

async fn a_stale_etag_is_aborted_and_writes_nothing(app: TestApp) {
    let first = set_retention(&app, 7).await;
    let mut client = admin(&app);
    let stale = pb::TenantSettings {
        retention: duration(2 * DAY),
        ..first.clone()
    };
    let status = assert_status(
        update(&mut client, stale.clone(), &["retention"], "0").await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        info.metadata.get("currentEtag").map(String::as_str),
        Some("1")
    );
    let now = get(&mut client).await.unwrap();
    assert_eq!(now.etag, "1");
    assert_eq!(seconds(&now.retention), (7 * DAY) as i64);
    // With the current etag it applies.
    let second = update(&mut client, stale, &["retention"], "1")
        .await
        .expect("current etag");
    assert_eq!(second.etag, "2");
    assert_eq!(seconds(&second.retention), (2 * DAY) as i64);
}

/// A change of acme's settings that must be refused, naming `field`.
struct Refused {
    paths: &'static [&'static str],
    change: fn(&mut pb::TenantSettings),
    field: &'static str,
}

const REFUSED: &[Refused] = &[
    Refused {
        paths: &["retention"],
        change: |s| s.retention = duration(DAY - 1),
        field: "tenant_settings.retention",
    },
    Refused {
        paths: &["retention"],
        change: |s| s.retention = duration(3651 * DAY),
        field: "tenant_settings.retention",
    },
    Refused {
        paths: &["retention"],
        change: |s| {
            s.retention = Some(prost_types::Duration {
                seconds: -(DAY as i64),
                nanos: 0,
            })
        },
        field: "tenant_settings.retention",
    },
    Refused {
        paths: &["request_ttl"],
        change: |s| s.request_ttl = duration(3599),
        field: "tenant_settings.request_ttl",
    },
    Refused {
        paths: &["request_ttl"],
        change: |s| s.request_ttl = duration(91 * DAY),
        field: "tenant_settings.request_ttl",
    },
    Refused {
        paths: &["escalate_after"],
        change: |s| s.escalate_after = duration(0),
        field: "tenant_settings.escalate_after",
    },
    Refused {
        paths: &["escalate_after"],
        change: |s| s.escalate_after = duration(72 * 3600),
        field: "tenant_settings.escalate_after",
    },
    Refused {
        paths: &["teams_claim"],
        change: |s| s.teams_claim = String::new(),
        field: "tenant_settings.teams_claim",
    },
    Refused {
        paths: &["supervises_claim"],
        change: |s| s.supervises_claim = "c".repeat(65),
        field: "tenant_settings.supervises_claim",
    },
    Refused {
        paths: &["supervises_claim"],
        change: |s| s.supervises_claim = "teams".into(),
        field: "tenant_settings.supervises_claim",
    },
    Refused {
        paths: &["phone_default_country_code"],
        change: |s| s.phone_default_country_code = "0044".into(),
        field: "tenant_settings.phone_default_country_code",
    },
    Refused {
        paths: &["two_person_rule"],
        change: |s| {
            s.two_person_rule.as_mut().unwrap().open_pipeline_at_least = vec![pb::CurrencyAmount {
                currency: "eur".into(),
                amount_minor: 1,
            }]
        },
        field: "tenant_settings.two_person_rule.open_pipeline_at_least[0]",
    },
    Refused {
        paths: &["two_person_rule"],
        change: |s| {
            s.two_person_rule.as_mut().unwrap().open_pipeline_at_least = vec![pb::CurrencyAmount {
                currency: "EUR".into(),
                amount_minor: 0,
            }]
        },
        field: "tenant_settings.two_person_rule.open_pipeline_at_least[0]",
    },
    Refused {
        paths: &["two_person_rule"],
        change: |s| {
            s.two_person_rule.as_mut().unwrap().open_pipeline_at_least = vec![
                pb::CurrencyAmount {
                    currency: "EUR".into(),
                    amount_minor: 1,
                },
                pb::CurrencyAmount {
                    currency: "EUR".into(),
                    amount_minor: 2,
                },
            ]
        },
        field: "tenant_settings.two_person_rule.open_pipeline_at_least[1]",
    },
    Refused {
        paths: &["two_person_rule"],
        change: |s| s.two_person_rule.as_mut().unwrap().records_at_least = -1,
        field: "tenant_settings.two_person_rule.records_at_least",
    },
    Refused {
        paths: &["two_person_rule"],
        change: |s| s.two_person_rule.as_mut().unwrap().batch_size_above = -5,
        field: "tenant_settings.two_person_rule.batch_size_above",
    },
    Refused {
        paths: &[],
        change: |s| s.retention = duration(2 * DAY),
        field: "update_mask",
    },
    Refused {
        paths: &["etag"],
        change: |s| s.etag = "9".into(),
        field: "update_mask",
    },
    Refused {
        paths: &["retention_days"],
        change: |_| {},
        field: "update_mask",
    },
];

async fn every_rule_names_the_field_it_refuses(app: TestApp) {
    let mut client = admin(&app);
    let defaults = get(&mut client).await.unwrap();
    for case in REFUSED {
        let mut wanted = defaults.clone();
        (case.change)(&mut wanted);
        let status = assert_status(
            update(&mut client, wanted, case.paths, "").await,
            Code::InvalidArgument,
            "INVALID_FIELD",
        );
        assert_eq!(bad_fields(&status), vec![case.field], "{status:?}");
    }
    assert_eq!(
        get(&mut client).await.unwrap(),
        defaults,
        "nothing was written"
    );
    // The same settings within the bounds apply: the refusals were the values'.
    let mut fine = defaults.clone();
    fine.retention = duration(DAY);
    fine.request_ttl = duration(90 * DAY);
    fine.escalate_after = duration(3600);
    fine.teams_claim = "groups".into();
    fine.supervises_claim = "c".repeat(64);
    fine.two_person_rule = Some(pb::TwoPersonRule {
        open_pipeline_at_least: vec![
            pb::CurrencyAmount {
                currency: "EUR".into(),
                amount_minor: 5_000_000,
            },
            pb::CurrencyAmount {
                currency: "USD".into(),
                amount_minor: 6_000_000,
            },
        ],
        records_at_least: 100,
        batch_size_above: 50,
        key_accounts: true,
        admin_required: true,
    });
    let paths = [
        "retention",
        "request_ttl",
        "escalate_after",
        "teams_claim",
        "supervises_claim",
        "two_person_rule",
    ];
    let stored = update(&mut client, fine.clone(), &paths, "0")
        .await
        .expect("within the bounds");
    let read = get(&mut client).await.unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.two_person_rule, fine.two_person_rule);
    assert_eq!(read.updated_by, "admin-1");
    assert!(read.update_time.is_some());
}

async fn another_tenants_settings_are_untouched_and_unreachable(app: TestApp) {
    set_retention(&app, 7).await;
    let mut globex = settings_as(&app, "globex", "admin-1", &["admin"]);
    let theirs = get(&mut globex).await.unwrap();
    assert_eq!(theirs.etag, "0", "globex still has the server's settings");
    assert_eq!(
        seconds(&theirs.retention),
        LifecycleSettings::default().retention.as_secs() as i64
    );
    // Acme's etag means nothing to globex: the tenant is the token's, never the request's.
    let wanted = pb::TenantSettings {
        retention: duration(2 * DAY),
        ..theirs
    };
    assert_status(
        update(&mut globex, wanted.clone(), &["retention"], "1").await,
        Code::Aborted,
        "ETAG_MISMATCH",
    );
    update(&mut globex, wanted, &["retention"], "0")
        .await
        .expect("globex changes its own");
    let ours = get(&mut admin(&app)).await.unwrap();
    assert_eq!(ours.etag, "1");
    assert_eq!(seconds(&ours.retention), (7 * DAY) as i64);
}

async fn a_change_is_in_the_audit_trail(app: TestApp) {
    set_retention(&app, 7).await;
    let events = app
        .audit_events(pb::ListAuditEventsRequest {
            action: "tenant_settings.update".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.actor, "admin-1");
    assert_eq!(event.target_type, "tenant_settings");
    assert_eq!(event.summary, "retention=7d");
    assert!(app.verify_audit().await.valid);
    // A refused change leaves no trace.
    let mut client = admin(&app);
    let current = get(&mut client).await.unwrap();
    let _ = update(&mut client, current, &["retention"], "0").await;
    let events = app
        .audit_events(pb::ListAuditEventsRequest {
            action: "tenant_settings.update".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(events.len(), 1);
}
