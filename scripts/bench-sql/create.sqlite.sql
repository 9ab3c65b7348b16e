-- CreateCustomer's writes as raw SQL on SQLite: the ceiling the RPC is divided by
-- (scripts/bench.sh --writes). The statements of create.pgbench, in SQLite's dialect: the same
-- rows, in the same order and transaction, as src/domain/customers.rs `create_in` under
-- src/domain/mutation.rs `run`, with no service logic.
--
-- Run by examples/write_load.rs (the sqlite3 CLI has no SHA-256, and a stand-in would not be the
-- chain): C tasks over a pool of as many connections as the server's (8), each runs these
-- statements in order, binding the same argument list to each (a statement binds the $N it
-- names). After the SELECT of the audit head, the driver computes the event's chain hash with
-- the service's own function (crm_service::domain::audit::chain_hash, the cost the server pays
-- in its process) and binds it; the connection is opened as the server opens its own (WAL,
-- synchronous = FULL, foreign keys, busy timeout). A statement after a `-- request_id` line runs
-- only in the runs with a request_id. The customer's own triggers (search index, name trigrams)
-- fire as they do for the service.
--
--  $1 tenant           $2 customer id      $3 now              $4 name
--  $5 e-mail           $6 search text      $7 e-mail key       $8 name key
--  $9 request id (or NULL)                 $10 audit sequence  $11 previous hash
--  $12 chain hash      $13 event sequence  $14 fingerprint     $15 stored answer (JSON)
--  $16 the writer      $17 phone           $18 phone key       $19 version read
BEGIN IMMEDIATE;
-- request_id
SELECT subject, operation, fingerprint, response FROM idempotency_key WHERE tenant_id = $1 AND request_id = $9;
INSERT INTO customer (tenant_id, id, name, phone, email, industry, owner_id, lifecycle_stage, status,
    external_ref, legal_hold, search_text, create_time, update_time, delete_time, purge_time,
    deletion_id, version, erase_time, key_account, match_email, match_phone, match_ref, match_name)
  VALUES ($1, $2, $4, $17, $5, NULL, $16, 'LEAD', 'ACTIVE', NULL, false, $6, $3, $3, NULL, NULL,
    NULL, 1, NULL, false, $7, $18, NULL, $8);
SELECT sequence, hash, event_sequence FROM audit_head WHERE tenant_id = $1;
INSERT INTO customer_event (tenant_id, sequence, event_type, customer_id, record_type, record_id, action, time, counts)
  VALUES ($1, $13, 'CREATED', $2, 'customer', $2, 'customer.create', $3, '');
INSERT INTO audit_event (tenant_id, sequence, time, actor, action, target_type, target_id, customer_id,
    request_id, trace_id, summary, previous_hash, hash)
  VALUES ($1, $10, $3, $16, 'customer.create', 'customer', $2, $2, $9, '', 'created', $11, $12);
-- request_id
INSERT INTO idempotency_key (tenant_id, request_id, subject, operation, fingerprint, response, create_time)
  VALUES ($1, $9, $16, 'CreateCustomer', $14, $15, $3);
UPDATE audit_head SET sequence = $10, hash = $12, event_sequence = $13 WHERE tenant_id = $1;
COMMIT;
