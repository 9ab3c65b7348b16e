//! How much metadata a call may carry (issue 16). Up to the service's limit (16 KiB of header
//! list, counted as HTTP/2 counts it: name + value + 32 bytes per field, pseudo-headers
//! included) a call is served; above it, and up to the transport's own limit (1 MiB), it gets
//! INVALID_ARGUMENT with reason METADATA_TOO_LARGE naming the limit and no RetryInfo — the same
//! call can never succeed — before its token is even looked at, and the connection stays usable.
//! Above the transport's limit, HTTP/2 itself refuses the call: the codes clients then see are
//! pinned here, as measured, because they are h2's, not ours.

use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::common::{TestApp, assert_status, figure};

crate::on_both_databases!(
    a_100_kb_token_is_invalid_argument_metadata_too_large_and_not_retryable,
    five_hundred_extra_headers_are_invalid_argument_metadata_too_large,
    metadata_just_under_the_limit_is_served_and_a_bogus_token_there_is_unauthenticated,
    metadata_above_the_transports_own_limit_is_refused_by_http2_as_documented,
    health_checks_pass_the_metadata_limit,
);

/// The service's limit, as documented.
const LIMIT: usize = 16 * 1024;

/// Sends `authorization` and `extra` headers verbatim on every call.
#[derive(Clone)]
struct Headers {
    authorization: String,
    extra: Vec<(String, String)>,
}

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        if !self.authorization.is_empty() {
            metadata.insert("authorization", self.authorization.parse().expect("ascii"));
        }
        for (name, value) in &self.extra {
            let key = MetadataKey::from_bytes(name.as_bytes()).expect("header name");
            metadata.append(key, MetadataValue::try_from(value.as_str()).expect("ascii"));
        }
        Ok(request)
    }
}

type Client = CustomerServiceClient<InterceptedService<Channel, Headers>>;

fn client(app: &TestApp, authorization: String, extra: Vec<(String, String)>) -> Client {
    CustomerServiceClient::with_interceptor(
        app.channel(),
        Headers {
            authorization,
            extra,
        },
    )
}

async fn list(client: &mut Client) -> Result<pb::ListCustomersResponse, Status> {
    client
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .map(|r| r.into_inner())
}

/// Asserts a METADATA_TOO_LARGE refusal: INVALID_ARGUMENT, the limit named in the message and in
/// the ErrorInfo, the measured size over it, and no RetryInfo.
fn assert_too_large(result: Result<pb::ListCustomersResponse, Status>) -> usize {
    let status = assert_status(result, Code::InvalidArgument, "METADATA_TOO_LARGE");
    assert!(status.message().contains("16384"), "{}", status.message());
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.metadata["limitBytes"], LIMIT.to_string());
    let measured: usize = info.metadata["metadataBytes"].parse().unwrap();
    assert!(measured > LIMIT, "{measured}");
    assert!(
        details.retry_info().is_none(),
        "it can never succeed: no RetryInfo"
    );
    measured
}

/// Extra headers, (name, value).
type Extra = Vec<(String, String)>;

/// `n` extra headers of 64 bytes each as HTTP/2 counts them.
fn extra_headers(n: usize) -> Extra {
    (0..n)
        .map(|i| (format!("x-extra-{i:05}"), format!("{i:018}")))
        .collect()
}

async fn a_100_kb_token_is_invalid_argument_metadata_too_large_and_not_retryable(app: TestApp) {
    let mut big = client(&app, format!("Bearer {}", "x".repeat(100_000)), Vec::new());
    let measured = assert_too_large(list(&mut big).await);
    figure(format!("a 100 KB token: {measured} bytes of header list"));
    // The refusal is a gRPC status, not a broken connection: the same channel serves the next
    // call.
    app.customers()
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .expect("the connection is still usable");
}

async fn five_hundred_extra_headers_are_invalid_argument_metadata_too_large(app: TestApp) {
    let token = app.token("acme", "rep-1", &["sales_rep"]);
    let mut many = client(&app, format!("Bearer {token}"), extra_headers(500));
    let measured = assert_too_large(list(&mut many).await);
    figure(format!(
        "500 extra headers: {measured} bytes of header list"
    ));
    app.customers()
        .list_customers(pb::ListCustomersRequest::default())
        .await
        .expect("the connection is still usable");
}

async fn metadata_just_under_the_limit_is_served_and_a_bogus_token_there_is_unauthenticated(
    app: TestApp,
) {
    // Measure what this client sends besides the padding: ask with too much, read the size.
    let token = app.token("acme", "rep-1", &["sales_rep"]);
    let probe = ("x-pad".to_owned(), "p".repeat(LIMIT));
    let mut over = client(&app, format!("Bearer {token}"), vec![probe.clone()]);
    let measured = assert_too_large(list(&mut over).await);
    let rest = measured - (probe.0.len() + probe.1.len() + 32);
    // Padding that brings the list to exactly the limit is served…
    let exact = ("x-pad".to_owned(), "p".repeat(LIMIT - rest - 32 - 5));
    let mut at_limit = client(&app, format!("Bearer {token}"), vec![exact.clone()]);
    list(&mut at_limit).await.expect("exactly at the limit");
    // …one byte more is not,
    let mut one_over = client(
        &app,
        format!("Bearer {token}"),
        vec![(exact.0.clone(), format!("{}p", exact.1))],
    );
    assert_eq!(assert_too_large(list(&mut one_over).await), LIMIT + 1);
    // …and a bogus token just under the limit is judged as a token: UNAUTHENTICATED.
    let bogus = format!("Bearer {}", "x".repeat(LIMIT - 1024));
    assert_status(
        list(&mut client(&app, bogus, Vec::new())).await,
        Code::Unauthenticated,
        "INVALID_TOKEN",
    );
}

async fn metadata_above_the_transports_own_limit_is_refused_by_http2_as_documented(app: TestApp) {
    let token = format!("Bearer {}", app.token("acme", "rep-1", &["sales_rep"]));
    // (what, authorization, extra headers, the code tonic's client reports). Up to 80 frames of
    // 16 KiB h2 reads the whole block and answers HTTP 431, which tonic reads as UNKNOWN; past 80
    // it ends the connection with GOAWAY ENHANCE_YOUR_CALM ("too_many_continuations"), which tonic
    // reports as RESOURCE_EXHAUSTED, or as UNKNOWN "transport error" (a broken pipe) when the
    // connection closes while the client is still writing the block: which of the two is a race.
    let cases: Vec<(&str, String, Extra, &[Code])> = vec![
        (
            "20,000 headers, 1.25 MiB",
            token,
            extra_headers(20_000),
            &[Code::Unknown],
        ),
        (
            "a 1.1 MiB token",
            format!("Bearer {}", "x".repeat(1100 * 1024)),
            Vec::new(),
            &[Code::Unknown],
        ),
        (
            "a 1.5 MiB token",
            format!("Bearer {}", "x".repeat(1536 * 1024)),
            Vec::new(),
            &[Code::ResourceExhausted, Code::Unknown],
        ),
    ];
    for (what, authorization, extra, codes) in cases {
        let status = list(&mut client(&app, authorization, extra))
            .await
            .expect_err(what);
        figure(format!("{what}: {status:?}"));
        assert!(codes.contains(&status.code()), "{what}: {status:?}");
        // Even after a GOAWAY, the channel reconnects: a call that finds the closing connection
        // is refused by the transport (CANCELLED "connection closed") and its retry is served.
        let mut tries = 0;
        loop {
            match app
                .customers()
                .list_customers(pb::ListCustomersRequest::default())
                .await
            {
                Ok(_) => break,
                Err(status)
                    if matches!(status.code(), Code::Cancelled | Code::Unavailable)
                        && tries < 5 =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(status) => panic!("the channel does not serve the next call: {status:?}"),
            }
        }
    }
}

async fn health_checks_pass_the_metadata_limit(app: TestApp) {
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let mut health = HealthClient::new(app.channel());
    let answer = health
        .check(check())
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // A probe is held to the same limit, and told so in the same words.
    let oversized = Headers {
        authorization: String::new(),
        extra: vec![("x-pad".into(), "p".repeat(LIMIT))],
    };
    let status = HealthClient::with_interceptor(app.channel(), oversized)
        .check(check())
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "METADATA_TOO_LARGE"
    );
}
