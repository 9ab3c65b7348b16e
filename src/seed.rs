//! `crm-service seed`: realistic demo data, or benchmark data at scale (a million customers with
//! their records in minutes: multi-row INSERTs, one transaction per block of customers).
//! Deterministic: the same options give the same names and states (ids and times differ).

use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::config::SeedArgs;
use crate::domain::Clock;
use crate::domain::customers::{Customer, CustomerStatus, LifecycleStage};
use crate::domain::records::*;
use crate::store::{self, Store, StoreConfig};

/// Customers written per transaction: big enough to amortise commits, small enough to keep
/// SQLite's write lock short for anyone else using the database.
const CUSTOMERS_PER_TRANSACTION: usize = 2_000;

const PREFIXES: &[&str] = &[
    "North", "Blue", "Silver", "Green", "Red", "Bright", "Iron", "Oak", "Summit", "Harbor", "Pine",
    "Stone", "Golden", "Cedar", "River", "Falcon", "Maple", "Atlas", "Nova", "Orbit",
];
const CORES: &[&str] = &[
    "wind", "field", "bridge", "gate", "point", "wave", "works", "line", "peak", "light", "stream",
    "forge", "crest", "vale", "ridge", "port",
];
const SUFFIXES: &[&str] = &[
    "Ltd", "GmbH", "Inc", "LLC", "SA", "BV", "AB", "Oy", "plc", "& Co",
];
const INDUSTRIES: &[&str] = &[
    "retail",
    "energy",
    "logistics",
    "healthcare",
    "software",
    "manufacturing",
    "finance",
    "education",
];
const FIRST_NAMES: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "José",
];
const LAST_NAMES: &[&str] = &[
    "Smith", "Müller", "García", "Kowalski", "Nakamura", "Okafor", "Rossi", "Dubois",
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP"];

/// A small deterministic generator (SplitMix64): fast, and reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn customer(rng: &mut Rng, n: u64, now: chrono::DateTime<Utc>) -> Customer {
    let name = format!(
        "{}{} {} #{n}",
        rng.pick(PREFIXES),
        rng.pick(CORES),
        rng.pick(SUFFIXES)
    );
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let lifecycle_stage = match rng.below(10) {
        0..=2 => LifecycleStage::Lead,
        3..=5 => LifecycleStage::Prospect,
        _ => LifecycleStage::Customer,
    };
    Customer {
        id: Uuid::now_v7(),
        email: format!("contact@{slug}.example"),
        phone: format!("+1 555 {:07}", n % 10_000_000),
        industry: rng.pick(INDUSTRIES).to_owned(),
        owner_id: format!("rep-{}", rng.below(20) + 1),
        lifecycle_stage,
        status: if rng.below(10) == 0 {
            CustomerStatus::Inactive
        } else {
            CustomerStatus::Active
        },
        external_ref: format!("ERP-{n:08}"),
        name,
        legal_hold: false,
        key_account: false,
        create_time: now,
        update_time: now,
        delete_time: None,
        purge_time: None,
        version: 1,
        deletion_id: None,
    }
}

/// One related record of kind number `i % 6`. `deletable` keeps to states that never block a
/// deletion (for the big benchmark customer).
fn record(
    rng: &mut Rng,
    customer_id: Uuid,
    i: u64,
    deletable: bool,
    now: chrono::DateTime<Utc>,
) -> Record {
    let data = match i % 6 {
        0 => RecordData::Contact(ContactData {
            full_name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
            email: format!("person{i}@customer.example"),
            phone: format!("+44 20 {:07}", i % 10_000_000),
            job_title: "Purchasing".into(),
        }),
        1 => RecordData::Activity(ActivityData {
            kind: Some(
                [
                    ActivityKind::Call,
                    ActivityKind::Email,
                    ActivityKind::Meeting,
                    ActivityKind::Note,
                ][rng.below(4) as usize],
            ),
            subject: format!("Follow-up {i}"),
            occur_time: Some(now - chrono::Duration::days(rng.below(365) as i64)),
        }),
        2 => RecordData::Deal(DealData {
            title: format!("Renewal {i}"),
            amount_minor: (rng.below(5_000) as i64 + 1) * 100,
            currency: rng.pick(CURRENCIES).to_owned(),
            stage: Some([DealStage::Open, DealStage::Won, DealStage::Lost][rng.below(3) as usize]),
        }),
        3 => RecordData::Order(OrderData {
            number: format!("SO-{i:09}"),
            amount_minor: (rng.below(10_000) as i64 + 1) * 100,
            currency: rng.pick(CURRENCIES).to_owned(),
            status: Some(if deletable || rng.below(10) > 0 {
                OrderStatus::Paid
            } else {
                OrderStatus::Open
            }),
        }),
        4 => RecordData::Contract(ContractData {
            number: format!("CT-{i:09}"),
            status: Some(if deletable {
                ContractStatus::Draft
            } else {
                [
                    ContractStatus::Draft,
                    ContractStatus::Active,
                    ContractStatus::Expired,
                ][rng.below(3) as usize]
            }),
            end_date: "2027-12-31".into(),
        }),
        _ => RecordData::Project(ProjectData {
            name: format!("Rollout {i}"),
            status: Some(if deletable || rng.below(2) == 0 {
                ProjectStatus::Done
            } else {
                ProjectStatus::Active
            }),
        }),
    };
    Record {
        id: Uuid::now_v7(),
        customer_id,
        data,
        create_time: now,
        update_time: now,
        delete_time: None,
        purge_time: None,
        version: 1,
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
    )) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub async fn run(config: &StoreConfig, args: &SeedArgs) -> Result<(), String> {
    if !crate::auth::valid_tenant(&args.tenant) {
        return Err(format!("{:?} is not a valid tenant id", args.tenant));
    }
    let store = Store::connect(config)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    let started = Instant::now();
    let mut rng = Rng(0x5EED_0000 ^ args.customers);
    let now = Clock::system().now();
    let tenant = args.tenant.as_str();
    let (mut customers_written, mut records_written) = (0u64, 0u64);

    let bar = progress(args.customers, "customers");
    let mut next = 0u64;
    while next < args.customers {
        let block = (args.customers - next).min(CUSTOMERS_PER_TRANSACTION as u64);
        let mut customers = Vec::with_capacity(block as usize);
        let mut records = Vec::with_capacity((block * args.records_per_customer) as usize);
        for n in next..next + block {
            let c = customer(&mut rng, n, now);
            for i in 0..args.records_per_customer {
                records.push(record(
                    &mut rng,
                    c.id,
                    n * args.records_per_customer + i,
                    false,
                    now,
                ));
            }
            customers.push(c);
        }
        let tx = store.begin_write().await.map_err(|e| e.to_string())?;
        store::customers::insert_many(tx.conn(), tenant, &customers, args.batch)
            .await
            .map_err(|e| e.to_string())?;
        store::records::insert_many(tx.conn(), tenant, &records, args.batch)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        customers_written += block;
        records_written += records.len() as u64;
        next += block;
        bar.set_position(next);
    }
    bar.finish_and_clear();

    let mut big_customer = None;
    if args.big_customer_records > 0 {
        let mut c = customer(&mut rng, args.customers, now);
        c.name = format!("Benchmark Customer ({} records)", args.big_customer_records);
        c.external_ref = format!("BENCH-{}", c.id.simple());
        let tx = store.begin_write().await.map_err(|e| e.to_string())?;
        store::customers::insert_many(tx.conn(), tenant, std::slice::from_ref(&c), 1)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        customers_written += 1;
        let bar = progress(args.big_customer_records, "records");
        let mut i = 0;
        while i < args.big_customer_records {
            let block = (args.big_customer_records - i).min(20_000);
            let records: Vec<Record> = (i..i + block)
                .map(|k| record(&mut rng, c.id, k, true, now))
                .collect();
            let tx = store.begin_write().await.map_err(|e| e.to_string())?;
            store::records::insert_many(tx.conn(), tenant, &records, args.batch)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            records_written += block;
            i += block;
            bar.set_position(i);
        }
        bar.finish_and_clear();
        big_customer = Some(c.id);
    }

    let elapsed = started.elapsed();
    println!(
        "seeded tenant {tenant}: {customers_written} customers and {records_written} records in {} ({:.0} rows/s)",
        human(elapsed),
        (customers_written + records_written) as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(id) = big_customer {
        println!(
            "benchmark customer with {} records: {id}",
            args.big_customer_records
        );
    }
    if let Some(file) = crate::app::sqlite_file(&config.url) {
        let size: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", file.display())).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "SQLite file {}: {:.1} MiB",
            file.display(),
            size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
