//! ListDeletedCustomers: the recycle bin.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::access::Caller;
use super::super::model::recycle_bin::{BinEntry, BinFilter, BinPosition};
use super::super::paging::{self, Page, QueryFingerprint};
use super::super::validate::{self, Violations};
use super::Deletions;
use super::rules::bin_requester;
use crate::error::{Error, Result};
use crate::store;

/// A bin position in a page token: the purge time in microseconds, then the id.
const POSITION_LEN: usize = 8 + 16;

impl Deletions {
    /// The tenant's deleted customers that can still be restored, soonest purge first; see
    /// [`bin_requester`] for whose a caller sees.
    pub async fn recycle_bin(
        &self,
        caller: &Caller,
        mut filter: BinFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<BinEntry>> {
        if let Some(user) = &filter.requested_by {
            let mut v = Violations::new();
            v.text("requested_by", user, validate::OWNER_ID_MAX);
            v.finish()?;
        }
        filter.requested_by = bin_requester(caller, filter.requested_by.take())?;
        let limit = paging::page_size("page_size", page_size)?;
        let fingerprint = fingerprint(&filter);
        let now = self.clock.now().timestamp();
        let after = if page_token.is_empty() {
            None
        } else {
            let position = self.page_key.open_position::<POSITION_LEN>(
                "page_token",
                page_token,
                &caller.tenant,
                fingerprint,
                now,
            )?;
            Some(decode(&position).ok_or_else(|| {
                Error::invalid_field("page_token", "is not a page token of this query")
            })?)
        };
        let mut items =
            store::recycle_bin::list(self.store.conn(), &caller.tenant, &filter, after, limit + 1)
                .await?;
        let next_page_token = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().and_then(BinEntry::position).map(|last| {
                self.page_key
                    .seal_position(&caller.tenant, fingerprint, &encode(last), now)
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

fn fingerprint(filter: &BinFilter) -> QueryFingerprint {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let before = filter
        .purge_before
        .map(|t| t.timestamp_micros().to_string())
        .unwrap_or_default();
    QueryFingerprint::of(&[
        "ListDeletedCustomers",
        filter.requested_by.as_deref().unwrap_or_default(),
        &id(filter.deletion_request_id),
        &id(filter.deletion_batch_id),
        &before,
    ])
}

fn encode(position: BinPosition) -> [u8; POSITION_LEN] {
    let mut bytes = [0; POSITION_LEN];
    bytes[..8].copy_from_slice(&position.purge_time.timestamp_micros().to_be_bytes());
    bytes[8..].copy_from_slice(position.id.as_bytes());
    bytes
}

fn decode(bytes: &[u8; POSITION_LEN]) -> Option<BinPosition> {
    let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
    Some(BinPosition {
        purge_time: DateTime::<Utc>::from_timestamp_micros(micros)?,
        id: Uuid::from_slice(&bytes[8..]).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_position_survives_its_token_bytes() {
        let position = BinPosition {
            purge_time: DateTime::<Utc>::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode(&encode(position)), Some(position));
    }
}
