-- The ceiling of the customer table on SQLite: the INSERT of CreateCustomer's row alone (as in
-- create.sqlite.sql, same arguments), autocommit; no audit, no outbox, no head. Run by
-- examples/write_load.rs.
INSERT INTO customer (tenant_id, id, name, phone, email, industry, owner_id, lifecycle_stage, status,
    external_ref, legal_hold, search_text, create_time, update_time, delete_time, purge_time,
    deletion_id, version, erase_time, key_account, match_email, match_phone, match_ref, match_name)
  VALUES ($1, $2, $4, $17, $5, NULL, $16, 'LEAD', 'ACTIVE', NULL, false, $6, $3, $3, NULL, NULL,
    NULL, 1, NULL, false, $7, $18, NULL, $8);
