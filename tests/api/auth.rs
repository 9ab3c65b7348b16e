//! Authentication (docs/reliability.md A1, A2): every CustomerService and RecordService method
//! refuses a missing or bad token with UNAUTHENTICATED and does nothing; health and reflection need
//! none.
//!
//! Tokens are checked by the interceptor, before any handler touches the database, so these tests
//! are database-independent and run on SQLite only (plain `#[tokio::test]`s, not
//! `on_both_databases!`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crm_service::proto::crm::v1 as pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{
    Db, Kind, SECRET, TestApp, assert_status, create_record, delete_record, get_customer,
    get_record, list_all_customers, list_records, mask, new_customer, random_id, touch_record,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "sub": "rep-1",
        "tenant": "acme",
        "roles": ["sales_rep"],
        "exp": now() + 600,
    })
}

fn sign_with(algorithm: Algorithm, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with(Algorithm::HS256, claims, SECRET.as_bytes())
}

fn without(claim: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(claim);
    c
}

fn with(claim: &str, value: Value) -> Value {
    let mut c = claims();
    c[claim] = value;
    c
}

/// An unsigned token: header `{"alg":"none","typ":"JWT"}`, valid claims, empty signature.
fn alg_none() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims().to_string());
    format!("{header}.{body}.")
}

/// A valid token with the first character of its signature changed.
fn flipped_signature() -> String {
    let token = sign(&claims());
    let at = token.rfind('.').unwrap() + 1;
    let mut bytes = token.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Every refused `authorization` value (`None`: no header), with the ErrorInfo reason expected.
fn refused_headers() -> Vec<(&'static str, Option<String>, &'static str)> {
    let bearer = |t: String| Some(format!("Bearer {t}"));
    vec![
        ("no header", None, "MISSING_TOKEN"),
        ("empty header", Some(String::new()), "MISSING_TOKEN"),
        (
            "basic auth",
            Some("Basic cmVwLTE6cHc=".into()),
            "MISSING_TOKEN",
        ),
        (
            "token without scheme",
            Some(sign(&claims())),
            "MISSING_TOKEN",
        ),
        ("garbage", bearer("garbage".into()), "INVALID_TOKEN"),
        ("empty bearer", Some("Bearer ".into()), "INVALID_TOKEN"),
        (
            "expired beyond the 30 s leeway",
            bearer(sign(&with("exp", json!(now() - 120)))),
            "INVALID_TOKEN",
        ),
        (
            "not valid before two minutes from now",
            bearer(sign(&with("nbf", json!(now() + 120)))),
            "INVALID_TOKEN",
        ),
        (
            "signed with another secret",
            bearer(sign_with(
                Algorithm::HS256,
                &claims(),
                b"another-secret-0123456789abcdef-0123456789",
            )),
            "INVALID_TOKEN",
        ),
        (
            "flipped signature",
            bearer(flipped_signature()),
            "INVALID_TOKEN",
        ),
        (
            "HS512 with the right secret",
            bearer(sign_with(Algorithm::HS512, &claims(), SECRET.as_bytes())),
            "INVALID_TOKEN",
        ),
        ("alg none", bearer(alg_none()), "INVALID_TOKEN"),
        (
            "no tenant claim",
            bearer(sign(&without("tenant"))),
            "INVALID_TOKEN",
        ),
        (
            "empty tenant",
            bearer(sign(&with("tenant", json!("")))),
            "INVALID_TOKEN",
        ),
        (
            "malformed tenant",
            bearer(sign(&with("tenant", json!("acme/../globex")))),
            "INVALID_TOKEN",
        ),
        (
            "no sub claim",
            bearer(sign(&without("sub"))),
            "INVALID_TOKEN",
        ),
        (
            "no exp claim",
            bearer(sign(&without("exp"))),
            "INVALID_TOKEN",
        ),
    ]
}

/// What a tenant `acme` holds before the attacks: one customer and one record of each kind.
struct Seed {
    customer: pb::Customer,
    records: Vec<(Kind, String)>,
}

async fn seed(app: &TestApp) -> Seed {
    let customer = app.create_customer("Victim").await;
    let mut records = app.records();
    let mut ids = Vec::new();
    for kind in Kind::ALL {
        let record = create_record(&mut records, kind, &customer.id)
            .await
            .unwrap();
        ids.push((kind, record.id));
    }
    let customer = get_customer(&mut app.customers(), &customer.id).await;
    Seed {
        customer,
        records: ids,
    }
}

/// Calls every method of both services with `header` as `authorization`, on real ids.
async fn call_every_method(
    app: &TestApp,
    header: Option<&str>,
    seed: &Seed,
) -> Vec<(String, Result<(), Status>)> {
    let mut customers = app.customers_with_header(header);
    let mut records = app.records_with_header(header);
    let customer_id = seed.customer.id.as_str();
    let mut out = Vec::new();
    let mut create = new_customer("Intruder");
    create.request_id = random_id();
    out.push((
        "CreateCustomer".to_owned(),
        customers.create_customer(create).await.map(drop),
    ));
    out.push((
        "GetCustomer".to_owned(),
        customers
            .get_customer(pb::GetCustomerRequest {
                customer_id: customer_id.into(),
            })
            .await
            .map(drop),
    ));
    out.push((
        "ListCustomers".to_owned(),
        customers
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .map(drop),
    ));
    out.push((
        "UpdateCustomer".to_owned(),
        customers
            .update_customer(pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    id: customer_id.into(),
                    name: "Hijacked".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
                etag: String::new(),
                request_id: String::new(),
            })
            .await
            .map(drop),
    ));
    for (kind, id) in &seed.records {
        let (kind, name) = (*kind, kind.name());
        out.push((
            format!("Create {name}"),
            create_record(&mut records, kind, customer_id)
                .await
                .map(drop),
        ));
        out.push((
            format!("Get {name}"),
            get_record(&mut records, kind, id).await.map(drop),
        ));
        out.push((
            format!("List {name}"),
            list_records(&mut records, kind, customer_id, 0, "", false)
                .await
                .map(drop),
        ));
        out.push((
            format!("Update {name}"),
            touch_record(&mut records, kind, id).await.map(drop),
        ));
        if let Some(result) = delete_record(&mut records, kind, id).await {
            out.push((format!("Delete {name}"), result.map(drop)));
        }
    }
    out
}

/// The tenant's data is exactly as seeded: one customer at its seeded etag, each record live.
async fn assert_untouched(app: &TestApp, seed: &Seed) {
    let mut customers = app.customers();
    let all = list_all_customers(&mut customers, Default::default()).await;
    assert_eq!(all, std::slice::from_ref(&seed.customer));
    let mut records = app.records();
    for (kind, id) in &seed.records {
        let (page, _) = list_records(&mut records, *kind, &seed.customer.id, 0, "", true)
            .await
            .unwrap();
        assert_eq!(page.len(), 1, "{kind:?}");
        assert_eq!(&page[0].id, id);
        assert!(!page[0].deleted);
        assert_eq!(page[0].etag, "1", "{kind:?} was written");
    }
}

/// Named `sqlite::…` like the other suites' SQLite runs (these need no PostgreSQL twin).
mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_method_refuses_a_missing_or_bad_token_and_does_nothing() {
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let seed = seed(&app).await;
        let mut calls = 0;
        for (case, header, reason) in refused_headers() {
            for (method, result) in call_every_method(&app, header.as_deref(), &seed).await {
                let status = result.expect_err(&format!("{method} accepted {case}"));
                assert_eq!(
                    status.code(),
                    Code::Unauthenticated,
                    "{method}, {case}: {status:?}"
                );
                assert_status(Err::<(), _>(status), Code::Unauthenticated, reason);
                calls += 1;
            }
        }
        // 4 customer methods + 29 record methods, for each refused header.
        assert_eq!(calls, refused_headers().len() * 33);
        assert_untouched(&app, &seed).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_valid_token_passes_on_every_method() {
        // The control of the test above: the same calls with a good token all succeed.
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let seed = seed(&app).await;
        let header = format!("Bearer {}", sign(&claims()));
        for (method, result) in call_every_method(&app, Some(&header), &seed).await {
            result.unwrap_or_else(|e| panic!("{method}: {e:?}"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_expired_within_the_leeway_is_still_accepted() {
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let token = sign(&with("exp", json!(now() - 5)));
        let header = format!("Bearer {token}");
        app.customers_with_header(Some(&header))
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .expect("30 s of leeway for clock skew");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_answers_without_a_token() {
        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let mut health = HealthClient::new(app.channel());
        let overall = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health needs no token")
            .into_inner();
        assert_eq!(overall.status, ServingStatus::Serving as i32);
        for service in ["crm.v1.CustomerService", "crm.v1.RecordService"] {
            // The named services turn SERVING once the database answers its first ping: wait for
            // that on the Watch stream (no sleeps), then Check must agree.
            let mut watch = health
                .watch(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            let serving = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while let Some(update) = watch.next().await {
                    if update.unwrap().status == ServingStatus::Serving as i32 {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            assert!(serving, "{service} never became SERVING");
            let checked = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(checked.status, ServingStatus::Serving as i32, "{service}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "crm.v1.NoSuchService".into(),
            })
            .await;
        assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
    }

    /// What each reflection service lists: the API, health, and itself (tonic-reflection lists the
    /// version being asked only).
    fn assert_lists_the_api(names: &[String], reflection: &str) {
        for expected in [
            "crm.v1.CustomerService",
            "crm.v1.RecordService",
            "grpc.health.v1.Health",
            reflection,
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reflection_v1_lists_the_services_without_a_token() {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let mut client = ServerReflectionClient::new(app.channel());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection needs no token")
            .into_inner();
        let response: ServerReflectionResponse = responses.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert_lists_the_api(&names, "grpc.reflection.v1.ServerReflection");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reflection_v1alpha_lists_the_services_without_a_token() {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, ServerReflectionResponse};

        let app = TestApp::spawn(Db::Sqlite).await.unwrap();
        let mut client = ServerReflectionClient::new(app.channel());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection needs no token")
            .into_inner();
        let response: ServerReflectionResponse = responses.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert_lists_the_api(&names, "grpc.reflection.v1alpha.ServerReflection");
    }
}

/// RFC 7515 §4.1.11: a JOSE header's `crit` lists extensions the recipient must understand or
/// refuse the token. This server understands none, so any `crit` is refused, signed or not, and
/// however often the token is sent (a refused token is never remembered as verified).
mod critical_header {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use crm_service::proto::crm::v1 as pb;
    use hmac::{Hmac, Mac};
    use serde_json::{Value, json};
    use sha2::Sha256;
    use tonic::Code;

    use super::claims;
    use crate::common::{SECRET, TestApp, assert_status};

    crate::on_both_databases!(
        a_token_whose_header_has_crit_is_unauthenticated_every_time,
        the_same_token_built_by_hand_without_crit_is_accepted,
    );

    /// An HS256 token with exactly `header`, signed with the test secret.
    fn hand_made(header: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    async fn list(app: &TestApp, token: &str) -> Result<pb::ListCustomersResponse, tonic::Status> {
        app.customers_with_header(Some(&format!("Bearer {token}")))
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .map(|r| r.into_inner())
    }

    async fn a_token_whose_header_has_crit_is_unauthenticated_every_time(app: TestApp) {
        for header in [
            json!({"alg": "HS256", "typ": "JWT", "crit": ["x-unknown"], "x-unknown": true}),
            json!({"alg": "HS256", "typ": "JWT", "crit": ["x-unknown"]}),
            json!({"alg": "HS256", "crit": ["exp"]}),
            json!({"alg": "HS256", "crit": []}),
            json!({"alg": "HS256", "crit": null}),
        ] {
            let token = hand_made(&header);
            for attempt in 1..=2 {
                let status = assert_status(
                    list(&app, &token).await,
                    Code::Unauthenticated,
                    "INVALID_TOKEN",
                );
                assert!(
                    status.message().contains("crit"),
                    "{header} (attempt {attempt}): {status:?}"
                );
            }
        }
    }

    async fn the_same_token_built_by_hand_without_crit_is_accepted(app: TestApp) {
        for header in [
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": "JWT", "x-unknown": true}),
        ] {
            list(&app, &hand_made(&header))
                .await
                .unwrap_or_else(|e| panic!("{header}: {e:?}"));
        }
    }
}
