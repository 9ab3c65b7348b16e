//! Likely duplicates of a customer: the tenant's other live customers that share its e-mail, its
//! phone number or its external reference, or have a very similar name (`model::matching` says
//! when two of those are the same), scored by how strongly what they share identifies a company,
//! strongest first.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Clock;
use super::access::{Action, Caller};
use super::customer_deleted;
use super::model::customer::Customer;
use super::model::matching::{self, MatchKey};
use super::paging::{self, Page, PageTokenKey, QueryFingerprint};
use super::tenant_settings::TenantPolicies;
use crate::error::{Error, Result};
use crate::store::{self, Store};

/// How many customers one key may bring: a key shared by more (a switchboard number, a shared
/// mailbox) says little about any one of them, and the list stays bounded.
const PER_KEY: u64 = 100;
/// How many names the index may offer as possibly similar, before they are scored: enough for
/// every similar name of the benchmark's million seeded customers (at most 1,504 there), and a
/// bound on the work of a name shared by very many.
const NAME_SCAN: u64 = 2_000;
/// A very similar name alone is weaker evidence than any shared key: names repeat across
/// companies (franchises, branches, common words). Weighted by its similarity, a name alone
/// scores 42 to 60.
const NAME_WEIGHT: f64 = 0.6;
/// The largest page of candidates (0 means the usual 50).
const MAX_PAGE: u64 = 100;
/// A page token's position: the score, then the id.
const POSITION_LEN: usize = 4 + 16;

/// A likely duplicate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateCandidate {
    pub customer: Customer,
    /// What the two customers share, in the order of `MatchKey`.
    pub matches: Vec<MatchKey>,
    /// 0–100: how likely the two are one company.
    pub score: u32,
}

/// How likely one shared key alone makes two customers one company, in percent. An external
/// reference is another system's id for the company; an e-mail is usually one person's there; a
/// phone number may be a switchboard shared by a group; a name, see `NAME_WEIGHT`.
fn weight(key: MatchKey, name_similarity: f64) -> f64 {
    match key {
        MatchKey::ExternalRef => 0.95,
        MatchKey::Email => 0.90,
        MatchKey::Phone => 0.80,
        MatchKey::Name => NAME_WEIGHT * name_similarity,
    }
}

/// Several shared keys are independent evidence: the chance that all of them are coincidences
/// is the product of each one's.
pub fn score(matches: &[MatchKey], name_similarity: f64) -> u32 {
    let coincidence: f64 = matches
        .iter()
        .map(|k| 1.0 - weight(*k, name_similarity))
        .product();
    ((1.0 - coincidence) * 100.0).round() as u32
}

#[derive(Clone)]
pub struct Duplicates {
    store: Store,
    page_key: PageTokenKey,
    clock: Clock,
    /// The tenant's country calling code of phone numbers written without one.
    policies: TenantPolicies,
}

impl Duplicates {
    pub fn new(
        store: Store,
        page_key: PageTokenKey,
        clock: Clock,
        policies: TenantPolicies,
    ) -> Self {
        Self {
            store,
            page_key,
            clock,
            policies,
        }
    }

    /// A page of `customer_id`'s likely duplicates, the strongest first (then in id order). Any
    /// role; writes nothing.
    pub async fn candidates(
        &self,
        caller: &Caller,
        customer_id: Uuid,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<DuplicateCandidate>> {
        caller.require(Action::Read)?;
        let limit = paging::page_size("page_size", page_size)?.min(MAX_PAGE);
        let fingerprint = QueryFingerprint::of(&["DuplicateCandidates", &customer_id.to_string()]);
        let now = self.clock.now().timestamp();
        let after = match page_token {
            "" => None,
            token => Some(decode(&self.page_key.open_position::<POSITION_LEN>(
                "page_token",
                token,
                &caller.tenant,
                fingerprint,
                now,
            )?)),
        };
        let tx = self.store.begin_read().await?;
        let customer = store::customers::find(tx.conn(), &caller.tenant, customer_id)
            .await?
            .ok_or_else(|| Error::not_found("customer", customer_id))?;
        if customer.is_deleted() {
            return Err(customer_deleted(customer_id));
        }
        let all = self
            .all_candidates(tx.conn(), &caller.tenant, &customer)
            .await?;
        tx.commit().await?;
        let mut items: Vec<DuplicateCandidate> = all
            .into_iter()
            .filter(|c| after.is_none_or(|a| position(c) > a))
            .take(limit as usize + 1)
            .collect();
        let next_page_token = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().map(|last| {
                self.page_key.seal_position(
                    &caller.tenant,
                    fingerprint,
                    &encode(position(last)),
                    now,
                )
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Every candidate, in page order.
    async fn all_candidates(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customer: &Customer,
    ) -> Result<Vec<DuplicateCandidate>> {
        let settings = self.policies.effective_on(conn, tenant).await?;
        let phone = phone_keys(customer, settings.phone_default_country_code.as_deref());
        let wanted = [
            (
                MatchKey::ExternalRef,
                matching::external_ref_key(&customer.external_ref)
                    .into_iter()
                    .collect(),
            ),
            (
                MatchKey::Email,
                matching::email_key(&customer.email).into_iter().collect(),
            ),
            (MatchKey::Phone, phone),
        ];
        let mut found: BTreeMap<Uuid, (Customer, Vec<MatchKey>)> = BTreeMap::new();
        for (key, values) in wanted {
            let matching =
                store::customers::live_with_key(conn, tenant, key, &values, customer.id, PER_KEY)
                    .await?;
            for other in matching {
                found
                    .entry(other.id)
                    .or_insert_with(|| (other, Vec::new()))
                    .1
                    .push(key);
            }
        }
        let mut similarity = BTreeMap::new();
        for (other, s) in self.similar_names(conn, tenant, customer).await? {
            similarity.insert(other.id, s);
            found
                .entry(other.id)
                .or_insert_with(|| (other, Vec::new()))
                .1
                .push(MatchKey::Name);
        }
        let mut all: Vec<DuplicateCandidate> = found
            .into_values()
            .map(|(customer, mut matches)| {
                matches.sort();
                let name_similarity = similarity.get(&customer.id).copied().unwrap_or(0.0);
                DuplicateCandidate {
                    score: score(&matches, name_similarity),
                    customer,
                    matches,
                }
            })
            .collect();
        all.sort_by_key(position);
        Ok(all)
    }
}

/// The keys the customer's phone number matches under, with `country` for numbers without one.
fn phone_keys(customer: &Customer, country: Option<&str>) -> Vec<String> {
    matching::phone_key(&customer.phone)
        .map(|key| matching::same_phone_keys(&key, country))
        .unwrap_or_default()
}

impl Duplicates {
    /// Up to `PER_KEY` live customers whose name is at least `matching::NAME_THRESHOLD` similar
    /// to `customer`'s (the most similar ones, when more are), in id order, with their
    /// similarity. The index
    /// offers a superset; the similarity is computed here, the same on both databases.
    async fn similar_names(
        &self,
        conn: &impl store::Connection,
        tenant: &str,
        customer: &Customer,
    ) -> Result<Vec<(Customer, f64)>> {
        let Some(key) = matching::name_key(&customer.name) else {
            return Ok(Vec::new());
        };
        let offered = store::customers::live_with_similar_name(
            &self.store,
            conn,
            tenant,
            &key,
            customer.id,
            NAME_SCAN,
        )
        .await?;
        let mut similar: Vec<(Uuid, matching::Similarity)> = offered
            .into_iter()
            .map(|(id, other_key)| (id, matching::name_similarity(&key, &other_key)))
            .filter(|(_, s)| s.at_least(matching::NAME_THRESHOLD))
            .collect();
        similar.sort_by(|(a, sa), (b, sb)| {
            let (x, y) = (
                u64::from(sa.shared) * u64::from(sb.of),
                u64::from(sb.shared) * u64::from(sa.of),
            );
            y.cmp(&x).then(a.cmp(b))
        });
        similar.truncate(PER_KEY as usize);
        let ids: Vec<Uuid> = similar.iter().map(|(id, _)| *id).collect();
        let similarity: BTreeMap<Uuid, f64> =
            similar.into_iter().map(|(id, s)| (id, s.value())).collect();
        // In id order: the caller orders candidates by score.
        Ok(store::customers::live_among(conn, tenant, &ids)
            .await?
            .into_iter()
            .map(|c| {
                let s = similarity.get(&c.id).copied().unwrap_or(0.0);
                (c, s)
            })
            .collect())
    }
}

/// A candidate's place in page order: the highest score first, then by id.
fn position(c: &DuplicateCandidate) -> (std::cmp::Reverse<u32>, Uuid) {
    (std::cmp::Reverse(c.score), c.customer.id)
}

fn encode((score, id): (std::cmp::Reverse<u32>, Uuid)) -> [u8; POSITION_LEN] {
    let mut bytes = [0; POSITION_LEN];
    bytes[..4].copy_from_slice(&score.0.to_be_bytes());
    bytes[4..].copy_from_slice(id.as_bytes());
    bytes
}

fn decode(bytes: &[u8; POSITION_LEN]) -> (std::cmp::Reverse<u32>, Uuid) {
    let score = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let id = Uuid::from_bytes(bytes[4..].try_into().unwrap_or_default());
    (std::cmp::Reverse(score), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_shared_keys_score_higher_and_one_key_scores_its_weight() {
        assert_eq!(score(&[MatchKey::Phone], 0.0), 80);
        assert_eq!(score(&[MatchKey::Email], 0.0), 90);
        assert_eq!(score(&[MatchKey::Email, MatchKey::Phone], 0.0), 98);
        assert_eq!(
            score(
                &[MatchKey::ExternalRef, MatchKey::Email, MatchKey::Phone],
                0.0
            ),
            100
        );
    }

    #[test]
    fn a_similar_name_alone_scores_below_any_shared_key_and_adds_to_one() {
        assert_eq!(score(&[MatchKey::Name], 0.75), 45);
        assert_eq!(score(&[MatchKey::Name], 1.0), 60);
        assert!(score(&[MatchKey::Name], 1.0) < score(&[MatchKey::Phone], 0.0));
        // 1 - 0.2 × 0.55 = 0.89
        assert_eq!(score(&[MatchKey::Phone, MatchKey::Name], 0.75), 89);
    }

    #[test]
    fn positions_order_the_strongest_first_and_survive_a_token() {
        let p = (std::cmp::Reverse(98), Uuid::now_v7());
        assert_eq!(decode(&encode(p)), p);
        assert!((std::cmp::Reverse(98), Uuid::max()) < (std::cmp::Reverse(80), Uuid::nil()));
    }
}
