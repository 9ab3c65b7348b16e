//! Times writes against a running server:
//! - a closed loop of CreateCustomer calls (each customer then gets one contact, so the
//!   graph-version bump and the audit chain are in the path), N in flight for a fixed time, over
//!   one HTTP/2 channel per 16 calls: calls a second and the p50 and p99 latency of each call;
//! - `erase`: the deletion of one (big) customer, through preview, submit, approve and
//!   DeleteCustomer, then its erasure with PurgeCustomer: the time of the delete and of the purge.
//!
//! Run by scripts/bench-writes.sh, which seeds the data and starts the server.
//!
//! usage: write_bench ADDR SECRET [CONCURRENCY] [SECONDS]   (CRM_BENCH_TENANTS=N: over N tenants)
//!        write_bench erase ADDR SECRET CUSTOMER_ID

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_service::auth::{TokenRequest, mint};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;
use crm_service::proto::crm::v1::record_service_client::RecordServiceClient;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

fn authed<T>(message: T, bearer: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

fn bearer(secret: &str, tenant: &str, user: &str, role: &str) -> MetadataValue<Ascii> {
    let token = mint(
        secret.as_bytes(),
        &TokenRequest {
            tenant: tenant.into(),
            subject: user.into(),
            roles: vec![role.into()],
            ttl: Duration::from_secs(3600),
            issuer: None,
            audience: None,
            claims: Default::default(),
        },
    )
    .expect("token");
    format!("Bearer {token}").parse().expect("ascii")
}

/// Deletes the customer through the approval, then erases it; prints both times.
async fn erase(
    addr: &str,
    secret: &str,
    customer_id: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let rep = bearer(secret, "demo", "rep", "sales_rep");
    let supervisor = bearer(secret, "demo", "sup", "supervisor");
    let admin = bearer(secret, "demo", "admin", "admin");
    let mut customers = CustomerServiceClient::new(channel.clone());
    let mut approvals = DeletionApprovalServiceClient::new(channel);
    let id = customer_id.to_owned();
    let preview = customers
        .preview_delete_customer(authed(
            pb::PreviewDeleteCustomerRequest {
                customer_id: id.clone(),
            },
            &rep,
        ))
        .await?
        .into_inner()
        .preview
        .ok_or("no preview")?;
    let request = approvals
        .submit_deletion_request(authed(
            pb::SubmitDeletionRequestRequest {
                customer_id: id.clone(),
                preview_etag: preview.etag.clone(),
                reason: "write benchmark".into(),
                ..Default::default()
            },
            &rep,
        ))
        .await?
        .into_inner()
        .deletion_request
        .ok_or("no request")?;
    approvals
        .approve_deletion_request(authed(
            pb::ApproveDeletionRequestRequest {
                deletion_request_id: request.id.clone(),
                ..Default::default()
            },
            &supervisor,
        ))
        .await?;
    let started = Instant::now();
    customers
        .delete_customer(authed(
            pb::DeleteCustomerRequest {
                customer_id: id.clone(),
                deletion_request_id: request.id,
                etag: preview.etag,
                ..Default::default()
            },
            &rep,
        ))
        .await?;
    let deleted = started.elapsed();
    let started = Instant::now();
    let purged = customers
        .purge_customer(authed(
            pb::PurgeCustomerRequest {
                customer_id: id,
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    println!(
        "erase: DeleteCustomer {:.0} ms, PurgeCustomer {:.0} ms ({} records erased, {} kept)",
        deleted.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0,
        purged.erased_records,
        purged.kept_records
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "erase" {
        return erase(&args[2], &args[3], &args[4]).await;
    }
    if args.len() < 3 {
        eprintln!("usage: write_bench ADDR SECRET [CONCURRENCY] [SECONDS]");
        std::process::exit(2);
    }
    let addr = format!("http://{}", args[1]);
    let concurrency: usize = args.get(3).map_or(Ok(16), |c| c.parse())?;
    let seconds: f64 = args.get(4).map_or(Ok(10.0), |s| s.parse())?;
    // CRM_BENCH_TENANTS: the writers spread over this many tenants (each its own audit chain).
    let tenants: usize = std::env::var("CRM_BENCH_TENANTS").map_or(Ok(1), |t| t.parse())?;
    let bearers: Vec<_> = (0..tenants.max(1))
        .map(|t| {
            Arc::new(bearer(
                &args[2],
                &format!("bench{t}"),
                "writer",
                "sales_rep",
            ))
        })
        .collect();
    let mut channels = Vec::new();
    for _ in 0..concurrency.div_ceil(16) {
        channels.push(Channel::from_shared(addr.clone())?.connect().await?);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let channel = channels[worker % channels.len()].clone();
        let bearer = bearers[worker % bearers.len()].clone();
        workers.push(tokio::spawn(async move {
            let mut customers = CustomerServiceClient::new(channel.clone());
            let mut records = RecordServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let call = Instant::now();
                let created = customers
                    .create_customer(authed(
                        pb::CreateCustomerRequest {
                            customer: Some(pb::Customer {
                                name: format!("Writer {worker} customer {n}"),
                                email: format!("w{worker}.{n}@example.com"),
                                phone: "+1 555 0100".into(),
                                lifecycle_stage: pb::LifecycleStage::Lead as i32,
                                ..Default::default()
                            }),
                            request_id: String::new(),
                        },
                        &bearer,
                    ))
                    .await;
                let Ok(created) = created else {
                    failures += 1;
                    continue;
                };
                latencies.push(call.elapsed());
                let customer_id = created.into_inner().customer.map(|c| c.id);
                let call = Instant::now();
                let contact = records
                    .create_contact(authed(
                        pb::CreateContactRequest {
                            contact: Some(pb::Contact {
                                customer_id: customer_id.unwrap_or_default(),
                                full_name: format!("Contact {worker}.{n}"),
                                ..Default::default()
                            }),
                            request_id: String::new(),
                        },
                        &bearer,
                    ))
                    .await;
                match contact {
                    Ok(_) => latencies.push(call.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (mut l, f) = worker.await?;
        latencies.append(&mut l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "writes c={concurrency} tenants={}: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, {} calls, {failures} failed",
        bearers.len(),
        latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        latencies.len()
    );
    Ok(())
}
