//! A decider's inbox: the open requests or batches a caller may decide, oldest first. Which are
//! routed to whom is a rule of the policy stored with each (`approval::routed_to`), so the store
//! walks the open ones the caller did not make, in id order, and the walk keeps those routed to
//! the caller that they have not approved yet.

use uuid::Uuid;

use super::validate::Violations;
use crate::error::Result;

/// Rows read per statement of the walk.
const CHUNK: u64 = 200;
/// Statements one page may read: a page of a tenant with thousands of open requests routed to
/// others ends early (with a token to go on from) rather than reading them all in one call.
const MAX_CHUNKS: usize = 25;

/// An inbox lists PENDING items only: a `state` filter asking for another is INVALID_ARGUMENT
/// rather than an inbox that is always empty.
pub fn pending_only(state_is_pending_or_any: bool, what: &str) -> Result<()> {
    let mut v = Violations::new();
    if !state_is_pending_or_any {
        v.add(
            "state",
            format!(
                "awaiting_my_decision lists PENDING {what}: leave state unspecified or set it to \
                 PENDING"
            ),
        );
    }
    v.finish()
}

/// Up to `limit` items `fetch` yields (`fetch(after, n)`: up to `n` items after the id `after`, in
/// id order) that `keep` keeps, and where the next page starts (`None`: nothing after).
pub async fn walk<T, Fetched>(
    fetch: impl Fn(Option<Uuid>, u64) -> Fetched,
    keep: impl Fn(&T) -> bool,
    id: impl Fn(&T) -> Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<T>, Option<Uuid>)>
where
    Fetched: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut found = Vec::new();
    let mut cursor = after;
    for _ in 0..MAX_CHUNKS {
        let chunk = fetch(cursor, CHUNK).await?;
        let exhausted = (chunk.len() as u64) < CHUNK;
        for item in chunk {
            cursor = Some(id(&item));
            if keep(&item) {
                found.push(item);
            }
            // One more than the page says whether there is a next one.
            if found.len() as u64 > limit {
                found.truncate(limit as usize);
                let next = found.last().map(&id);
                return Ok((found, next));
            }
        }
        if exhausted {
            return Ok((found, None));
        }
    }
    Ok((found, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    async fn pages(
        all: &[Uuid],
        keep: impl Fn(&Uuid) -> bool + Copy,
        limit: u64,
    ) -> Vec<Vec<u128>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let fetch = |after: Option<Uuid>, n: u64| async move {
                Ok(all
                    .iter()
                    .copied()
                    .filter(|id| after.is_none_or(|a| *id > a))
                    .take(n as usize)
                    .collect::<Vec<_>>())
            };
            let (page, next) = walk(fetch, keep, |id| *id, after, limit).await.unwrap();
            out.push(page.iter().map(|id| id.as_u128()).collect());
            match next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    #[tokio::test]
    async fn pages_cover_every_kept_item_once_in_order() {
        let all = ids(1000);
        let kept = |id: &Uuid| id.as_u128().is_multiple_of(7);
        let pages = pages(&all, kept, 50).await;
        let flat: Vec<u128> = pages.concat();
        let want: Vec<u128> = (1..=1000u128).filter(|n| n.is_multiple_of(7)).collect();
        assert_eq!(flat, want);
        assert!(pages.iter().all(|p| p.len() <= 50));
    }

    #[tokio::test]
    async fn a_sparse_inbox_ends_pages_early_and_goes_on() {
        // One kept item past what one page may read: the first page is empty but not the last.
        let all = ids(CHUNK as u128 * MAX_CHUNKS as u128 + 10);
        let last = all.len() as u128;
        let pages = pages(&all, |id| id.as_u128() == last, 10).await;
        assert_eq!(pages.first().unwrap(), &Vec::<u128>::new());
        assert_eq!(pages.concat(), vec![last]);
    }
}
