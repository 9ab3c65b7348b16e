//! Times MergeCustomers and UnmergeCustomers of one big duplicate against a running server, each
//! against the raw set-based SQL doing the same writes on the same database (the ceiling), in
//! alternating cycles. Prints each cycle and the medians' ratios (target: ≤ 1.2 each).
//!
//! A service cycle: PreviewMergeCustomers, SubmitMergeRequest and ApproveDeletionRequest (not
//! timed), then MergeCustomers and UnmergeCustomers (timed, each one call). A raw cycle, in one
//! transaction each: per record table an INSERT … SELECT into merge_move and an UPDATE of
//! customer_id; the duplicate marked deleted and the survivor's version moved on — then back: the
//! survivor's row, the duplicate restored, per table the merge's record ids read and UPDATEd by
//! primary key (1,000 per statement), and the merge_move rows deleted. Both read and write the same rows; the service adds its checks, locks,
//! the request, the audit entry and its two events.
//!
//! On PostgreSQL every cycle updates every record twice: with autovacuum off (as on the machines
//! this was measured on) dead tuples would pile up and slow whichever side runs later, so the
//! record tables are vacuumed before each cycle (not timed) and both sides start alike.
//!
//! Run by scripts/bench-merge.sh, which seeds the duplicate and starts the server.
//!
//! usage: merge_bench ADDR DATABASE_URL SCHEMA|- DUPLICATE_ID SECRET [CYCLES] [--enforce]
//!
//! With `--enforce` each ratio is judged, and it exits 1 when one misses its target; without, the
//! figures are printed only (a debug build and a small duplicate say nothing about the target).

#[macro_use]
#[path = "support/raw_sql.rs"]
mod raw_sql;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crm_service::auth::{TokenRequest, mint};
use crm_service::domain::records::RecordKind;
use crm_service::proto::crm::v1 as pb;
use crm_service::proto::crm::v1::customer_service_client::CustomerServiceClient;
use crm_service::proto::crm::v1::deletion_approval_service_client::DeletionApprovalServiceClient;
use raw_sql::{Raw, sql, table_of};
use sea_orm::sqlx::{self, Row};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

const TENANT: &str = "demo";

fn bearer(secret: &str, user: &str, role: &str) -> MetadataValue<Ascii> {
    let token = mint(
        secret.as_bytes(),
        &TokenRequest {
            tenant: TENANT.into(),
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

fn authed<T>(message: T, bearer: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

impl Raw {
    /// Vacuums the tables a cycle rewrites (PostgreSQL only; outside any timing).
    async fn vacuum(&self) -> Result<(), sqlx::Error> {
        if let Raw::Pg(pool) = self {
            let tables: Vec<&str> = RecordKind::ALL
                .into_iter()
                .map(|kind| table_of(kind).0)
                .collect();
            sqlx::query(sql(format!(
                "VACUUM ANALYZE {}, customer, merge_move, deletion_request",
                tables.join(", ")
            )))
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// The merge's writes: returns the records moved.
    async fn merge(
        &self,
        duplicate: Uuid,
        survivor: Uuid,
        merge_id: Uuid,
    ) -> Result<u64, sqlx::Error> {
        let now: DateTime<Utc> = Utc::now();
        let purge = now + chrono::Duration::days(30);
        let mut moved = 0;
        on_pool!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            for kind in RecordKind::ALL {
                let table = table_of(kind).0;
                sqlx::query(sql(format!(
                    "INSERT INTO merge_move (tenant_id, merge_id, kind, record_id) \
                     SELECT tenant_id, $1, $2, id FROM {table} \
                     WHERE tenant_id = $3 AND customer_id = $4 AND delete_time IS NULL"
                )))
                .bind(merge_id)
                .bind(kind.name())
                .bind(TENANT)
                .bind(duplicate)
                .execute(&mut *tx)
                .await?;
                moved += sqlx::query(sql(format!(
                    "UPDATE {table} SET customer_id = $1 \
                     WHERE tenant_id = $2 AND customer_id = $3 AND delete_time IS NULL"
                )))
                .bind(survivor)
                .bind(TENANT)
                .bind(duplicate)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            sqlx::query(
                "UPDATE customer SET delete_time = $1, purge_time = $2, deletion_id = $3, \
                 version = version + 1 WHERE tenant_id = $4 AND id = $5 AND delete_time IS NULL",
            )
            .bind(now)
            .bind(purge)
            .bind(merge_id)
            .bind(TENANT)
            .bind(duplicate)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE customer SET version = version + 1, update_time = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(now)
                .bind(TENANT)
                .bind(survivor)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(moved)
    }

    /// The unmerge's writes: returns the records moved back.
    async fn unmerge(
        &self,
        duplicate: Uuid,
        survivor: Uuid,
        merge_id: Uuid,
    ) -> Result<u64, sqlx::Error> {
        let now: DateTime<Utc> = Utc::now();
        let mut moved = 0;
        on_pool!(self, pool, begin => {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query("UPDATE customer SET version = version + 1, update_time = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(now)
                .bind(TENANT)
                .bind(survivor)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE customer SET delete_time = NULL, purge_time = NULL, deletion_id = NULL, \
                 version = version + 1 WHERE tenant_id = $1 AND id = $2 AND delete_time IS NOT NULL",
            )
            .bind(TENANT)
            .bind(duplicate)
            .execute(&mut *tx)
            .await?;
            // The merge's ids read, then named by primary key in chunks of 1,000, as the store
            // does: a join with merge_move planned on stale statistics is quadratic.
            for kind in RecordKind::ALL {
                let table = table_of(kind).0;
                let ids: Vec<Uuid> = sqlx::query(
                    "SELECT record_id FROM merge_move WHERE tenant_id = $1 AND merge_id = $2 AND kind = $3",
                )
                .bind(TENANT)
                .bind(merge_id)
                .bind(kind.name())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<Uuid, _>(0))
                .collect::<Result<_, _>>()?;
                for chunk in ids.chunks(1000) {
                    let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
                    let mut q = sqlx::query(sql(format!(
                        "UPDATE {table} SET customer_id = $1 WHERE tenant_id = $2 AND customer_id = $3 \
                         AND id IN ({})",
                        list.join(", ")
                    )))
                    .bind(duplicate)
                    .bind(TENANT)
                    .bind(survivor);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    moved += q.execute(&mut *tx).await?.rows_affected();
                }
            }
            sqlx::query("DELETE FROM merge_move WHERE tenant_id = $1 AND merge_id = $2")
                .bind(TENANT)
                .bind(merge_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(moved)
    }

    async fn live_records(&self, customer: Uuid) -> Result<i64, sqlx::Error> {
        let mut total = 0;
        for kind in RecordKind::ALL {
            let text = format!(
                "SELECT COUNT(*) FROM {} WHERE tenant_id = $1 AND customer_id = $2 AND delete_time IS NULL",
                table_of(kind).0
            );
            total += on_pool!(self, pool, _begin => {
                sqlx::query(sql(text)).bind(TENANT).bind(customer).fetch_one(pool).await?.try_get::<i64, _>(0)?
            });
        }
        Ok(total)
    }
}

struct Service {
    customers: CustomerServiceClient<Channel>,
    approvals: DeletionApprovalServiceClient<Channel>,
    rep: MetadataValue<Ascii>,
    sup: MetadataValue<Ascii>,
}

impl Service {
    /// An approved merge request of `duplicate` into `survivor` (not timed).
    async fn approved(&mut self, duplicate: &str, survivor: &str) -> Result<String, tonic::Status> {
        let preview = self
            .customers
            .preview_merge_customers(authed(
                pb::PreviewMergeCustomersRequest {
                    duplicate_id: duplicate.into(),
                    survivor_id: survivor.into(),
                },
                &self.rep,
            ))
            .await?
            .into_inner()
            .preview
            .unwrap_or_default();
        let request = self
            .approvals
            .submit_merge_request(authed(
                pb::SubmitMergeRequestRequest {
                    duplicate_id: duplicate.into(),
                    survivor_id: survivor.into(),
                    duplicate_etag: preview.duplicate_etag,
                    survivor_etag: preview.survivor_etag,
                    take_fields: vec!["name".into()],
                    reason: "benchmark".into(),
                    request_id: String::new(),
                },
                &self.rep,
            ))
            .await?
            .into_inner()
            .deletion_request
            .unwrap_or_default();
        self.approvals
            .approve_deletion_request(authed(
                pb::ApproveDeletionRequestRequest {
                    deletion_request_id: request.id.clone(),
                    ..Default::default()
                },
                &self.sup,
            ))
            .await?;
        Ok(request.id)
    }

    /// One timed MergeCustomers and one timed UnmergeCustomers: (merge ms, unmerge ms, moved).
    async fn cycle(
        &mut self,
        duplicate: &str,
        survivor: &str,
    ) -> Result<(f64, f64, i64), tonic::Status> {
        let request_id = self.approved(duplicate, survivor).await?;
        let started = Instant::now();
        let merged = self
            .customers
            .merge_customers(authed(
                pb::MergeCustomersRequest {
                    deletion_request_id: request_id,
                    request_id: String::new(),
                },
                &self.rep,
            ))
            .await?
            .into_inner();
        let merge = started.elapsed();
        let started = Instant::now();
        let unmerged = self
            .customers
            .unmerge_customers(authed(
                pb::UnmergeCustomersRequest {
                    duplicate_id: duplicate.into(),
                    validate_only: false,
                    request_id: String::new(),
                },
                &self.sup,
            ))
            .await?
            .into_inner();
        let unmerge = started.elapsed();
        if unmerged.moved_back_records != merged.moved_records {
            return Err(tonic::Status::internal(format!(
                "moved {} and back {}",
                merged.moved_records, unmerged.moved_back_records
            )));
        }
        Ok((ms(merge), ms(unmerge), merged.moved_records))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let enforce = args.iter().any(|a| a == "--enforce");
    args.retain(|a| a != "--enforce");
    if args.len() < 6 {
        eprintln!(
            "usage: merge_bench ADDR DATABASE_URL SCHEMA|- DUPLICATE_ID SECRET [CYCLES] [--enforce]"
        );
        std::process::exit(2);
    }
    let (addr, url, schema, duplicate, secret) = (&args[1], &args[2], &args[3], &args[4], &args[5]);
    let cycles: usize = args.get(6).map_or(Ok(5), |c| c.parse())?;
    let schema = (schema != "-").then_some(schema.as_str());
    let raw = Raw::connect(url, schema).await?;
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut service = Service {
        customers: CustomerServiceClient::new(channel.clone()),
        approvals: DeletionApprovalServiceClient::new(channel),
        rep: bearer(secret, "bench-rep", "sales_rep"),
        sup: bearer(secret, "bench-sup", "supervisor"),
    };
    let survivor = service
        .customers
        .create_customer(authed(
            pb::CreateCustomerRequest {
                customer: Some(pb::Customer {
                    name: "Merge benchmark survivor".into(),
                    lifecycle_stage: pb::LifecycleStage::Customer as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &service.rep,
        ))
        .await?
        .into_inner()
        .customer
        .unwrap_or_default()
        .id;
    let (duplicate_id, survivor_id) = (Uuid::parse_str(duplicate)?, Uuid::parse_str(&survivor)?);
    let records = raw.live_records(duplicate_id).await?;
    println!(
        "merging a duplicate with {records} live records into an empty survivor, {cycles} cycles"
    );
    // One untimed cycle each way first: caches and plans warm for both.
    raw.vacuum().await?;
    service.cycle(duplicate, &survivor).await?;
    let warm = Uuid::now_v7();
    raw.merge(duplicate_id, survivor_id, warm).await?;
    raw.unmerge(duplicate_id, survivor_id, warm).await?;

    let (mut merge, mut unmerge, mut raw_merge, mut raw_unmerge) = (vec![], vec![], vec![], vec![]);
    for cycle in 1..=cycles {
        raw.vacuum().await?;
        let (m, u, moved) = service.cycle(duplicate, &survivor).await?;
        raw.vacuum().await?;
        let merge_id = Uuid::now_v7();
        let started = Instant::now();
        let raw_moved = raw.merge(duplicate_id, survivor_id, merge_id).await?;
        let rm = ms(started.elapsed());
        let started = Instant::now();
        let raw_back = raw.unmerge(duplicate_id, survivor_id, merge_id).await?;
        let ru = ms(started.elapsed());
        if raw_moved as i64 != moved || raw_back != raw_moved {
            return Err(format!(
                "the service moved {moved}, the raw SQL {raw_moved} and back {raw_back}"
            )
            .into());
        }
        println!(
            "cycle {cycle}: MergeCustomers {m:.1} ms (raw {rm:.1} ms), UnmergeCustomers {u:.1} ms (raw {ru:.1} ms), {moved} records"
        );
        merge.push(m);
        unmerge.push(u);
        raw_merge.push(rm);
        raw_unmerge.push(ru);
    }
    let mut missed = 0;
    for (call, service, raw) in [
        ("MergeCustomers", &merge, &raw_merge),
        ("UnmergeCustomers", &unmerge, &raw_unmerge),
    ] {
        let ratio = median(service) / median(raw);
        let verdict = match (enforce, ratio <= 1.2) {
            (false, _) => "not judged",
            (true, true) => "ok",
            (true, false) => "MISSED",
        };
        println!(
            "{call} median {:.1} ms, raw {:.1} ms: ratio {ratio:.2} (target <= 1.2) {verdict}",
            median(service),
            median(raw)
        );
        missed += usize::from(ratio > 1.2);
    }
    if enforce && missed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
