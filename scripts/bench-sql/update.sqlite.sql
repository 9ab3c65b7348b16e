-- UpdateCustomer's writes as raw SQL on SQLite: the ceiling the RPC is divided by
-- (scripts/bench.sh --writes). The statements of update.pgbench in SQLite's dialect (BEGIN
-- IMMEDIATE holds the write lock that FOR UPDATE takes there), run by examples/write_load.rs as
-- create.sqlite.sql is (same arguments; see there). After the SELECT of the customer the driver
-- binds the version it read as $19; after the SELECT of the head, the chain hash as $12.
BEGIN IMMEDIATE;
-- request_id
SELECT subject, operation, fingerprint, response FROM idempotency_key WHERE tenant_id = $1 AND request_id = $9;
SELECT tenant_id, id, name, phone, email, industry, owner_id, lifecycle_stage, status, external_ref,
    legal_hold, search_text, create_time, update_time, delete_time, purge_time, deletion_id, version,
    erase_time, key_account, match_email, match_phone, match_ref, match_name
  FROM customer WHERE tenant_id = $1 AND id = $2 AND erase_time IS NULL;
UPDATE customer SET name = $4, phone = phone, email = email, industry = industry, owner_id = owner_id,
    lifecycle_stage = lifecycle_stage, status = status, external_ref = external_ref,
    legal_hold = legal_hold, key_account = key_account,
    search_text = lower($4) || char(1) || coalesce(lower(email), '') || char(1) || coalesce(phone, ''),
    create_time = create_time, update_time = $3, version = $19 + 1, match_email = match_email,
    match_phone = match_phone, match_ref = match_ref, match_name = $8
  WHERE tenant_id = $1 AND id = $2 AND version = $19;
SELECT sequence, hash, event_sequence FROM audit_head WHERE tenant_id = $1;
INSERT INTO customer_event (tenant_id, sequence, event_type, customer_id, record_type, record_id, action, time, counts)
  VALUES ($1, $13, 'UPDATED', $2, 'customer', $2, 'customer.update', $3, '');
INSERT INTO audit_event (tenant_id, sequence, time, actor, action, target_type, target_id, customer_id,
    request_id, trace_id, summary, previous_hash, hash)
  VALUES ($1, $10, $3, $16, 'customer.update', 'customer', $2, $2, $9, '', 'fields=name', $11, $12);
-- request_id
INSERT INTO idempotency_key (tenant_id, request_id, subject, operation, fingerprint, response, create_time)
  VALUES ($1, $9, $16, 'UpdateCustomer', $14, $15, $3);
UPDATE audit_head SET sequence = $10, hash = $12, event_sequence = $13 WHERE tenant_id = $1;
COMMIT;
