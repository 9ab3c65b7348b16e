//! Times the deletion lifecycle on one big customer against a running server: PreviewDelete
//! (repeated, median and p95), then cycles of submit → approve → DeleteCustomer → RestoreCustomer,
//! printing each latency and the server's RSS (VmRSS / VmHWM from /proc) after each step.
//! Run by scripts/bench-lifecycle.sh, which seeds the data and starts the server.
//!
//! usage: lifecycle_bench ADDR CUSTOMER_ID SERVER_PID SECRET [CYCLES]

use std::time::{Duration, Instant};

use crm_service::auth::{TokenRequest, mint};
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

fn token(secret: &str, user: &str, role: &str) -> String {
    let request = TokenRequest {
        tenant: "demo".into(),
        subject: user.into(),
        roles: vec![role.into()],
        ttl: Duration::from_secs(3600),
        issuer: None,
        audience: None,
        claims: Default::default(),
    };
    mint(secret.as_bytes(), &request).expect("token")
}

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ascii");
    request.metadata_mut().insert("authorization", value);
    request
}

/// (VmRSS, VmHWM) of the server in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: lifecycle_bench ADDR CUSTOMER_ID SERVER_PID SECRET [CYCLES]");
        std::process::exit(2);
    }
    let (addr, customer_id, pid, secret) =
        (&args[1], args[2].clone(), args[3].parse::<u32>()?, &args[4]);
    let cycles: usize = args.get(5).map_or(Ok(3), |c| c.parse())?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut customers =
        CustomerServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20);
    let mut approvals = DeletionApprovalServiceClient::new(channel);
    let (rep, supervisor) = (
        token(secret, "bench-rep", "sales_rep"),
        token(secret, "bench-sup", "supervisor"),
    );

    let preview_once = |customers: &mut CustomerServiceClient<Channel>| {
        let request = authed(
            pb::PreviewDeleteCustomerRequest {
                customer_id: customer_id.clone(),
            },
            &rep,
        );
        let mut client = customers.clone();
        async move { client.preview_delete_customer(request).await }
    };
    // Warm-up, then timed previews.
    for _ in 0..3 {
        preview_once(&mut customers).await?;
    }
    let mut samples = Vec::new();
    let mut preview = None;
    for _ in 0..30 {
        let started = Instant::now();
        let response = preview_once(&mut customers).await?;
        samples.push(started.elapsed());
        preview = response.into_inner().preview;
    }
    samples.sort();
    let preview = preview.ok_or("no preview")?;
    let (rss, hwm) = memory(pid);
    println!(
        "preview      p50 {:7.2} ms  p95 {:7.2} ms  (cascade {}, keep {}, blockers {})  server RSS {rss:.1} MiB, peak {hwm:.1} MiB",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 95 / 100]),
        preview.cascade_count,
        preview.keep_count,
        preview.blockers.len()
    );
    let (_, hwm_start) = memory(pid);

    for cycle in 1..=cycles {
        let preview = preview_once(&mut customers)
            .await?
            .into_inner()
            .preview
            .ok_or("no preview")?;
        let submitted = approvals
            .submit_deletion_request(authed(
                pb::SubmitDeletionRequestRequest {
                    customer_id: customer_id.clone(),
                    preview_etag: preview.etag.clone(),
                    reason: format!("benchmark cycle {cycle}"),
                    request_id: String::new(),
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
                    deletion_request_id: submitted.id.clone(),
                    ..Default::default()
                },
                &supervisor,
            ))
            .await?;
        let started = Instant::now();
        let deleted = customers
            .delete_customer(authed(
                pb::DeleteCustomerRequest {
                    customer_id: customer_id.clone(),
                    deletion_request_id: submitted.id,
                    etag: preview.etag,
                    request_id: String::new(),
                },
                &rep,
            ))
            .await?
            .into_inner();
        let delete_time = started.elapsed();
        let (rss, hwm) = memory(pid);
        println!(
            "cycle {cycle} delete  {:8.1} ms  ({} records)  server RSS {rss:.1} MiB, peak {hwm:.1} MiB",
            ms(delete_time),
            deleted.deleted_records
        );
        let started = Instant::now();
        let restored: Result<_, Status> = customers
            .restore_customer(authed(
                pb::RestoreCustomerRequest {
                    customer_id: customer_id.clone(),
                    ..Default::default()
                },
                &supervisor,
            ))
            .await;
        let restore_time = started.elapsed();
        let restored = restored?.into_inner();
        let (rss, hwm) = memory(pid);
        println!(
            "cycle {cycle} restore {:8.1} ms  ({} records)  server RSS {rss:.1} MiB, peak {hwm:.1} MiB",
            ms(restore_time),
            restored.restored_records
        );
    }
    let (rss, hwm) = memory(pid);
    println!(
        "after {cycles} cycles: server RSS {rss:.1} MiB, peak {hwm:.1} MiB (peak growth {:.1} MiB)",
        hwm - hwm_start
    );
    Ok(())
}
