//! Versioned schema migrations, applied at start-up and by `crm-service migrate`. One file per
//! change; a landed migration is never edited.

use sea_orm_migration::prelude::*;

mod m0001_customers_and_records;
mod m0002_deletion_and_audit;
mod m0003_purge;
mod m0004_customer_events;
mod m0005_covering_live_indexes;
mod m0006_trigram_search;
mod m0007_sqlite_trigram_search;
pub(crate) mod m0008_ordered_trigram_search;
mod m0009_record_retention;
mod m0010_deletion_batches;
mod m0011_bin_and_batch_events;
mod m0012_duplicate_match_keys;
pub(crate) mod m0013_name_match_key;
mod m0014_merges;
mod m0015_approval_routing;
mod m0016_tenant_settings;
mod m0017_key_account;
mod m0018_audit_head_hot;
mod m0019_event_relay;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_customers_and_records::Migration),
            Box::new(m0002_deletion_and_audit::Migration),
            Box::new(m0003_purge::Migration),
            Box::new(m0004_customer_events::Migration),
            Box::new(m0005_covering_live_indexes::Migration),
            Box::new(m0006_trigram_search::Migration),
            Box::new(m0007_sqlite_trigram_search::Migration),
            Box::new(m0008_ordered_trigram_search::Migration),
            Box::new(m0009_record_retention::Migration),
            Box::new(m0010_deletion_batches::Migration),
            Box::new(m0011_bin_and_batch_events::Migration),
            Box::new(m0012_duplicate_match_keys::Migration),
            Box::new(m0013_name_match_key::Migration),
            Box::new(m0014_merges::Migration),
            Box::new(m0015_approval_routing::Migration),
            Box::new(m0016_tenant_settings::Migration),
            Box::new(m0017_key_account::Migration),
            Box::new(m0018_audit_head_hot::Migration),
            Box::new(m0019_event_relay::Migration),
        ]
    }
}
