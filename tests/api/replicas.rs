//! Replicas: several server processes on one PostgreSQL database.

use crm_service::proto::crm::v1 as pb;

use crate::common::{Db, TestApp};

/// PostgreSQL only: SQLite has one process by design (one file, one writer, no replicas), so
/// there is nothing to run across processes there.
mod postgres {
    use super::*;

    /// Two replicas starting together on one fresh PostgreSQL schema: the advisory lock lets one
    /// migrate while the other waits, and both then serve.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_starting_at_once_both_migrate_and_serve() {
        let Some(first) = TestApp::spawn(Db::Postgres).await else {
            return;
        };
        // A second server on the same schema, started while the first one is up: migrations are a
        // no-op for it. Then two more started at the same instant on a brand-new schema.
        let second = TestApp::spawn_on(Db::Postgres, first.schema.clone())
            .await
            .unwrap();
        second.create_customer("from the second replica").await;
        let schema = Some(format!("t_{}", uuid::Uuid::now_v7().simple()));
        let (a, b) = tokio::join!(
            TestApp::spawn_on(Db::Postgres, schema.clone()),
            TestApp::spawn_on(Db::Postgres, schema)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        a.create_customer("via a").await;
        let listed = b
            .customers()
            .list_customers(pb::ListCustomersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.customers.len(),
            1,
            "both replicas see one migrated schema"
        );
    }

    // ----- two replica PROCESSES, the client spreading the calls of each race over both ---------

    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Instant;

    use crm_service::store::Store;
    use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement};
    use tokio::sync::Barrier;
    use tonic::Status;
    use tonic_types::StatusExt;

    use crate::common::{
        Customers, approve, execute, figure, get_customer, new_contact, new_customer, new_deal,
        new_order, request_id,
    };
    use crate::process::{ServerProcess, fresh_database};

    /// Trials per race: 10, half the 20 of the in-process races (deletion_races.rs), so that the
    /// three races, each on two processes of its own, stay within ~40 s on 2 cores.
    const TRIALS: usize = 10;
    const CALLERS: usize = 32;
    const WRITERS: usize = 16;
    const WRITES_EACH: usize = 2;

    /// Two `crm-service serve` processes on one fresh schema (the second started once the first
    /// listens, so it finds the schema migrated), a `TestApp` talking to each, and a pool on the
    /// schema to read rows.
    struct Replicas {
        // First, so that the processes are killed before the apps drop the schema.
        processes: [ServerProcess; 2],
        apps: [TestApp; 2],
        store: Store,
    }

    impl Replicas {
        async fn start() -> Option<Replicas> {
            let (url, schema) = fresh_database(Db::Postgres).await?;
            let a = ServerProcess::start(Db::Postgres, &url, schema.as_deref(), &[]).await;
            let b = ServerProcess::start(Db::Postgres, &url, schema.as_deref(), &[]).await;
            assert_ne!(a.addr, b.addr);
            let apps = [a.app().await, b.app().await];
            let store = apps[0].store().await;
            Some(Replicas {
                processes: [a, b],
                apps,
                store,
            })
        }

        /// The replica serving caller `i`: even callers on A, odd ones on B.
        fn on(&self, i: usize) -> &TestApp {
            &self.apps[i % 2]
        }

        async fn rows(&self, sql: &str) -> Vec<QueryResult> {
            self.store
                .conn()
                .query_all_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }

        async fn count(&self, sql: &str) -> i64 {
            self.rows(sql).await[0]
                .try_get_by_index::<i64>(0)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }

        /// (4) Writes through both replicas at once, then `acme`'s audit chain verified through
        /// each: valid, one head, sequences 1..=n without gaps, events from both processes.
        /// Returns the verification and how many events each replica's tagged callers wrote.
        async fn audit_chain_holds(&self) -> (pb::VerifyAuditChainResponse, [usize; 2]) {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let mut client = self.on(i).customers_as(
                        "acme",
                        &format!("auditee-{i}-{}", tag(i)),
                        &["sales_rep"],
                    );
                    tokio::spawn(async move {
                        client
                            .create_customer(new_customer(&format!("Audited {i}")))
                            .await
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().expect("create through either replica");
            }
            let via_a = self.apps[0].verify_audit().await;
            let via_b = self.apps[1].verify_audit().await;
            assert!(via_a.valid, "{via_a:?}");
            assert_eq!(via_a, via_b, "both replicas verify one chain");
            let events = self.apps[1]
                .audit_events(pb::ListAuditEventsRequest::default())
                .await;
            let sequences: BTreeSet<i64> = events.iter().map(|e| e.sequence).collect();
            let n = events.len() as i64;
            assert_eq!(sequences, (1..=n).collect(), "no gap, no duplicate");
            assert_eq!((via_a.events_checked, via_a.head_sequence), (n, n));
            let head = events.iter().find(|e| e.sequence == n).unwrap();
            assert_eq!(head.hash, via_a.head_hash);
            let by_replica = [0, 1].map(|r| {
                events
                    .iter()
                    .filter(|e| e.actor.ends_with(&format!("-{}", tag(r))))
                    .count()
            });
            assert!(by_replica.iter().all(|&n| n >= 4), "{by_replica:?}");
            for (process, name) in self.processes.iter().zip(["A", "B"]) {
                let log = process.log();
                assert!(
                    !log.contains("internal error") && !log.contains("panicked"),
                    "replica {name}:\n{log}"
                );
            }
            (via_a, by_replica)
        }
    }

    impl Drop for Replicas {
        fn drop(&mut self) {
            if std::thread::panicking() {
                for (process, name) in self.processes.iter().zip(["A", "B"]) {
                    let log = process.log();
                    let tail: Vec<_> = log.lines().rev().take(40).collect();
                    let tail: Vec<_> = tail.into_iter().rev().collect();
                    eprintln!(
                        "--- replica {name} ({}) log tail ---\n{}",
                        process.addr,
                        tail.join("\n")
                    );
                }
            }
        }
    }

    /// The replica of caller `i`, as a suffix of user names: the audit trail then tells which
    /// process served each call.
    fn tag(i: usize) -> &'static str {
        ["a", "b"][i % 2]
    }

    fn code_reason(status: &Status) -> String {
        let reason = status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default();
        format!("{:?}/{reason}", status.code())
    }

    /// C1 across processes: 32 supervisors, half on each replica, approve one PENDING request at
    /// once; exactly one wins, every other one is refused DELETION_REQUEST_NOT_PENDING.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn approvals_spread_over_two_replica_processes_let_exactly_one_win() {
        let Some(r) = Replicas::start().await else {
            return;
        };
        let started = Instant::now();
        let approvers: Vec<_> = (0..CALLERS)
            .map(|i| {
                r.on(i)
                    .approvals_as("acme", &format!("sup-{i}-{}", tag(i)), &["supervisor"])
            })
            .collect();
        let mut losers = BTreeMap::<String, usize>::new();
        let (mut bad_trials, mut wins) = (0, [0; 2]);
        for trial in 0..TRIALS {
            // Made on one replica, submitted on the other, raced on both.
            let customer = r
                .on(trial)
                .create_customer(&format!("Approved across replicas {trial}"))
                .await;
            let pending = r.on(trial + 1).pending_deletion(&customer.id, "race").await;
            let barrier = Arc::new(Barrier::new(CALLERS));
            let tasks: Vec<_> = approvers
                .iter()
                .map(|client| {
                    let (mut client, id, barrier) =
                        (client.clone(), pending.id.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        approve(&mut client, &id).await
                    })
                })
                .collect();
            let (mut winners, mut wrong) = (Vec::new(), Vec::new());
            for (i, task) in tasks.into_iter().enumerate() {
                match task.await.unwrap() {
                    Ok(approved) => winners.push((i, approved)),
                    Err(status) => {
                        let key = code_reason(&status);
                        if key != "FailedPrecondition/DELETION_REQUEST_NOT_PENDING" {
                            wrong.push((i, status));
                        }
                        *losers.entry(key).or_default() += 1;
                    }
                }
            }
            bad_trials += usize::from(winners.len() != 1);
            assert!(wrong.is_empty(), "trial {trial}: other refusals {wrong:?}");
            assert_eq!(winners.len(), 1, "trial {trial}: {winners:?}");
            let (winner, answer) = &winners[0];
            wins[winner % 2] += 1;
            // Read back through the replica that did not serve the winner.
            let other = r.on(winner + 1);
            let stored = other.deletion_request(&pending.id).await;
            assert_eq!(
                &stored, answer,
                "trial {trial}: the winner's answer is stored"
            );
            assert_eq!(stored.state, pb::DeletionRequestState::Approved as i32);
            assert_eq!(stored.decided_by, format!("sup-{winner}-{}", tag(*winner)));
            assert_eq!(
                other
                    .audit_count(&customer.id, "deletion_request.approve")
                    .await,
                1,
                "trial {trial}: one approval event"
            );
        }
        let elapsed = started.elapsed();
        let (chain, by_replica) = r.audit_chain_holds().await;
        figure(format_args!(
            "Postgres 2 processes C1: {TRIALS} trials x {CALLERS} concurrent approvals (16 per \
             replica): trials with != 1 winner = {bad_trials}; winner on A/B {wins:?}; losers \
             {losers:?}; {elapsed:?}; audit chain valid, {} events, tagged A/B {by_replica:?}",
            chain.events_checked
        ));
    }

    /// Who executes, and with which idempotency key: a retrying client re-sending one key (the
    /// requester's, a supervisor's) over both replicas, a key per call, or none.
    fn delete_caller(r: &Replicas, i: usize, shared: &[String; 2]) -> (Customers, String) {
        let app = r.on(i);
        match (i / 2) % 4 {
            0 => (app.customers(), shared[0].clone()),
            1 => (
                app.customers_as("acme", "sup-1", &["supervisor"]),
                shared[1].clone(),
            ),
            2 => (
                app.customers_as("acme", &format!("sup-{i}-{}", tag(i)), &["supervisor"]),
                request_id(),
            ),
            _ => (app.customers(), String::new()),
        }
    }

    /// C2 across processes: 32 DeleteCustomer of one approved request, half on each replica;
    /// one deletion, and the database shows the customer's graph deleted once, under one id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deletes_spread_over_two_replica_processes_make_exactly_one_deletion() {
        let Some(r) = Replicas::start().await else {
            return;
        };
        let started = Instant::now();
        let mut losers = BTreeMap::<String, usize>::new();
        let (mut ok_answers, mut duplicate_deletions, mut replayed_across) = (0, 0, 0);
        for trial in 0..TRIALS {
            let setup = r.on(trial);
            let customer = setup
                .create_customer(&format!("Deleted across replicas {trial}"))
                .await;
            let c = customer.id.clone();
            let mut records = r.on(trial + 1).records();
            for _ in 0..3 {
                records
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(new_contact(&c)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
            records
                .create_deal(pb::CreateDealRequest {
                    deal: Some(new_deal(&c, pb::DealStage::Lost)),
                    request_id: String::new(),
                })
                .await
                .unwrap();
            records
                .create_order(pb::CreateOrderRequest {
                    order: Some(new_order(&c, pb::OrderStatus::Paid)),
                    request_id: String::new(),
                })
                .await
                .unwrap();
            let approved = setup.approved_deletion(&c, "race").await;
            let etag = approved.preview.as_ref().unwrap().etag.clone();
            let shared = [request_id(), request_id()];
            let barrier = Arc::new(Barrier::new(CALLERS));
            let tasks: Vec<_> = (0..CALLERS)
                .map(|i| {
                    let (mut client, key) = delete_caller(&r, i, &shared);
                    let request = pb::DeleteCustomerRequest {
                        customer_id: c.clone(),
                        deletion_request_id: approved.id.clone(),
                        etag: etag.clone(),
                        request_id: key.clone(),
                    };
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        (key, client.delete_customer(request).await)
                    })
                })
                .collect();
            let (mut deletion_ids, mut ok_keys, mut wrong) =
                (BTreeSet::new(), Vec::new(), Vec::new());
            for (i, task) in tasks.into_iter().enumerate() {
                match task.await.unwrap() {
                    (key, Ok(response)) => {
                        let response = response.into_inner();
                        assert_eq!(response.deleted_records, 4, "trial {trial}");
                        deletion_ids.insert(response.customer.unwrap().deletion_id);
                        ok_keys.push((i, key));
                        ok_answers += 1;
                    }
                    (_, Err(status)) => {
                        if !matches!(
                            status.code(),
                            tonic::Code::FailedPrecondition | tonic::Code::Aborted
                        ) {
                            wrong.push((i, status.clone()));
                        }
                        *losers.entry(code_reason(&status)).or_default() += 1;
                    }
                }
            }
            duplicate_deletions += usize::from(deletion_ids.len() != 1);
            assert!(wrong.is_empty(), "trial {trial}: {wrong:?}");
            assert_eq!(deletion_ids.len(), 1, "trial {trial}: {deletion_ids:?}");
            // One call did the work; any other success is a replay of its request_id.
            let keys: BTreeSet<_> = ok_keys.iter().map(|(_, k)| k.clone()).collect();
            assert!(
                ok_keys.len() == 1 || (keys.len() == 1 && !ok_keys[0].1.is_empty()),
                "trial {trial}: several calls succeeded without sharing a request_id: {ok_keys:?}"
            );
            let parities: BTreeSet<_> = ok_keys.iter().map(|(i, _)| i % 2).collect();
            replayed_across += usize::from(parities.len() == 2);
            let deletion_id = deletion_ids.into_iter().next().unwrap();
            assert!(!deletion_id.is_empty());

            // The database: one deletion id on the customer, its deleted records and its request;
            // every deleted record deleted with the customer; the paid order kept.
            let gone = get_customer(&mut r.on(trial + 1).customers(), &c).await;
            assert_eq!(gone.deletion_id, deletion_id, "trial {trial}");
            let ids = r
                .rows(&format!(
                    "SELECT DISTINCT deletion_id::text FROM ( \
                     SELECT deletion_id FROM customer WHERE id = '{c}' \
                     UNION ALL SELECT deletion_id FROM contact WHERE customer_id = '{c}' \
                     UNION ALL SELECT deletion_id FROM deal WHERE customer_id = '{c}' \
                     UNION ALL SELECT deletion_id FROM sales_order WHERE customer_id = '{c}' \
                     UNION ALL SELECT deletion_id FROM deletion_request WHERE customer_id = '{c}' \
                     ) ids WHERE deletion_id IS NOT NULL"
                ))
                .await
                .iter()
                .map(|row| row.try_get_by_index::<String>(0).unwrap())
                .collect::<Vec<_>>();
            assert_eq!(ids, std::slice::from_ref(&deletion_id), "trial {trial}");
            for (table, deleted, kept) in [("contact", 3, 0), ("deal", 1, 0), ("sales_order", 0, 1)]
            {
                let with_customer = r
                    .count(&format!(
                        "SELECT COUNT(*) FROM {table} t JOIN customer c \
                         ON c.tenant_id = t.tenant_id AND c.id = t.customer_id \
                         WHERE c.id = '{c}' AND t.deletion_id = c.deletion_id \
                         AND t.delete_time = c.delete_time"
                    ))
                    .await;
                let live = r
                    .count(&format!(
                        "SELECT COUNT(*) FROM {table} WHERE customer_id = '{c}' \
                         AND delete_time IS NULL AND deletion_id IS NULL"
                    ))
                    .await;
                assert_eq!(
                    (with_customer, live),
                    (deleted, kept),
                    "trial {trial}: {table}"
                );
            }
            let request = r.on(trial).deletion_request(&approved.id).await;
            assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);
            assert_eq!(
                r.on(trial + 1).audit_count(&c, "customer.delete").await,
                1,
                "trial {trial}"
            );
        }
        let elapsed = started.elapsed();
        let (chain, by_replica) = r.audit_chain_holds().await;
        figure(format_args!(
            "Postgres 2 processes C2: {TRIALS} trials x {CALLERS} concurrent DeleteCustomer (16 \
             per replica; 2 request_ids each re-sent over both replicas, 8 fresh, 8 none): trials \
             with != 1 deletion id = {duplicate_deletions}; trials with successes on both replicas \
             (a request_id replayed by the other process) = {replayed_across}; OK \
             answers {ok_answers} (replays included); losers {losers:?}; {elapsed:?}; audit \
             chain valid, {} events, tagged A/B {by_replica:?}",
            chain.events_checked
        ));
    }

    /// C4 across processes: 16 writers add contacts through one replica while the delete runs
    /// through the other (the roles swap every trial); no contact ends up live under a deleted
    /// customer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_on_one_replica_racing_a_delete_on_the_other_leave_no_live_contact() {
        let Some(r) = Replicas::start().await else {
            return;
        };
        let started = Instant::now();
        let (mut deleted, mut stale) = (0, 0);
        let (mut committed, mut orphans) = (0, 0);
        let mut refused = BTreeMap::<String, usize>::new();
        for trial in 0..TRIALS {
            let (deleting, writing) = (r.on(trial), r.on(trial + 1));
            let customer = deleting
                .create_customer(&format!("Written across replicas {trial}"))
                .await;
            let c = customer.id.clone();
            for _ in 0..2 {
                writing
                    .records()
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(new_contact(&c)),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
            }
            let approved = writing.approved_deletion(&c, "race").await;
            let etag = approved.preview.as_ref().unwrap().etag.clone();
            let barrier = Arc::new(Barrier::new(WRITERS + 1));
            // Writers of some trials read a little first, so that both outcomes occur.
            let warmup = (trial / 2) % 4;
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let user = format!("writer-{w}-{}", tag(trial + 1));
                    let records = writing.records_as("acme", &user, &["sales_rep"]);
                    let customers = writing.customers_as("acme", &user, &["sales_rep"]);
                    crate::common::spawn_contact_writer(
                        records,
                        customers,
                        c.clone(),
                        barrier.clone(),
                        warmup,
                        WRITES_EACH,
                    )
                })
                .collect();
            let deleter = {
                let (mut customers, c, id, barrier) = (
                    deleting.customers(),
                    c.clone(),
                    approved.id.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    execute(&mut customers, &c, &id, &etag).await
                })
            };
            let (mut written, mut refusals) = (Vec::new(), Vec::new());
            for writer in writers {
                for result in writer.await.unwrap() {
                    match result {
                        Ok(contact) => written.push(contact),
                        Err(status) => {
                            *refused.entry(code_reason(&status)).or_default() += 1;
                            refusals.push(status);
                        }
                    }
                }
            }
            committed += written.len();
            let outcome = deleter.await.unwrap();

            let live_sql = r
                .count(&format!(
                    "SELECT COUNT(*) FROM contact WHERE customer_id = '{c}' AND delete_time IS NULL"
                ))
                .await as usize;
            let live_api = writing
                .records()
                .list_contacts(pb::ListContactsRequest {
                    customer_id: c.clone(),
                    page_size: 1000,
                    show_deleted: false,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .contacts
                .len();
            assert_eq!(live_sql, live_api, "trial {trial}");
            let customer_now = get_customer(&mut deleting.customers(), &c).await;
            let request = writing.deletion_request(&approved.id).await;
            match outcome {
                Ok(response) => {
                    deleted += 1;
                    orphans += live_sql;
                    assert_eq!(
                        live_sql, 0,
                        "trial {trial}: live contacts under a deleted customer"
                    );
                    // A write that committed first would have made the delete stale.
                    assert!(written.is_empty(), "trial {trial}: {written:?}");
                    assert_eq!(response.deleted_records, 2, "trial {trial}");
                    let reasons: BTreeSet<_> = refusals.iter().map(code_reason).collect();
                    assert!(
                        reasons
                            .iter()
                            .all(|r| r == "FailedPrecondition/CUSTOMER_DELETED"),
                        "trial {trial}: {refusals:?}"
                    );
                    assert_eq!(
                        customer_now.deletion_id,
                        response.customer.unwrap().deletion_id
                    );
                    let with_customer = r
                        .count(&format!(
                            "SELECT COUNT(*) FROM contact t JOIN customer c \
                             ON c.tenant_id = t.tenant_id AND c.id = t.customer_id \
                             WHERE c.id = '{c}' AND t.deletion_id = c.deletion_id \
                             AND t.delete_time = c.delete_time"
                        ))
                        .await;
                    assert_eq!(
                        with_customer, 2,
                        "trial {trial}: every contact went with it"
                    );
                    assert_eq!(request.state, pb::DeletionRequestState::Executed as i32);
                }
                Err(status) => {
                    stale += 1;
                    assert_eq!(
                        code_reason(&status),
                        "FailedPrecondition/PREVIEW_STALE",
                        "trial {trial}: {status:?}"
                    );
                    assert!(refusals.is_empty(), "trial {trial}: {refusals:?}");
                    assert!(!written.is_empty(), "trial {trial}: stale without a write");
                    assert!(
                        customer_now.delete_time.is_none() && customer_now.deletion_id.is_empty()
                    );
                    assert_eq!(live_sql, 2 + written.len(), "trial {trial}");
                    assert_eq!(request.state, pb::DeletionRequestState::Stale as i32);
                }
            }
        }
        // The invariant over the whole schema, whatever the trials above asserted.
        let orphans_in_db = r
            .count(
                "SELECT COUNT(*) FROM contact t JOIN customer c \
                 ON c.tenant_id = t.tenant_id AND c.id = t.customer_id \
                 WHERE c.delete_time IS NOT NULL AND t.delete_time IS NULL",
            )
            .await;
        assert_eq!(orphans_in_db, 0);
        let elapsed = started.elapsed();
        let (chain, by_replica) = r.audit_chain_holds().await;
        figure(format_args!(
            "Postgres 2 processes C4: {TRIALS} trials x ({WRITERS} writers x {WRITES_EACH} \
             contacts on one replica + 1 delete on the other): delete won {deleted}, stale \
             {stale}; writes committed {committed}, refused {refused:?}; live contacts under a \
             deleted customer = {orphans} (whole schema: {orphans_in_db}); {elapsed:?}; audit \
             chain valid, {} events, tagged A/B {by_replica:?}",
            chain.events_checked
        ));
    }
}
