//! Keyset pagination (AIP-158): page sizes and opaque, tamper-proof page tokens.
//!
//! A token seals the last id of a page together with the tenant and a fingerprint of the query it
//! belongs to, under an HMAC-SHA-256 key shared by every replica (kept in the database). Reusing a
//! token with another tenant or other filters, or altering any bit of it, is `INVALID_ARGUMENT`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;
/// AIP-158's rule of thumb: tokens need not outlive a few days.
const TOKEN_LIFETIME_SECS: i64 = 3 * 24 * 3600;
const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 16;
/// Longer tokens are refused before any decoding work.
const MAX_TOKEN_CHARS: usize = 512;

/// 0 → the default, above the maximum → the maximum, negative → `INVALID_ARGUMENT`.
pub fn page_size(field: &str, requested: i32) -> Result<u64> {
    match requested {
        n if n < 0 => Err(Error::invalid_field(field, "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

/// One page of results and the token of the next one (`None` on the last page).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// Identifies a query (its kind and every filter) so a token cannot be replayed on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryFingerprint([u8; 16]);

impl QueryFingerprint {
    /// Fingerprint of a query described by its parts; parts are length-prefixed so that no two
    /// different lists of parts hash alike.
    pub fn of(parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self(out)
    }
}

/// The HMAC key that seals page tokens.
#[derive(Clone)]
pub struct PageTokenKey([u8; 32]);

impl std::fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenKey(..)")
    }
}

impl PageTokenKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(payload);
        mac
    }

    /// Seals the position after `last_id` for `tenant` and `query`.
    pub fn seal(
        &self,
        tenant: &str,
        query: QueryFingerprint,
        last_id: Uuid,
        now_secs: i64,
    ) -> String {
        self.seal_position(tenant, query, last_id.as_bytes(), now_secs)
    }

    /// The last id of the previous page, if `token` was sealed by us for this tenant and query
    /// and has not expired. `field` names the request field in the error.
    pub fn open(
        &self,
        field: &str,
        token: &str,
        tenant: &str,
        query: QueryFingerprint,
        now_secs: i64,
    ) -> Result<Uuid> {
        let bytes: [u8; 16] = self.open_position(field, token, tenant, query, now_secs)?;
        Ok(Uuid::from_bytes(bytes))
    }

    /// Seals a position of any shape (for an order other than by id: the sort key, then the id).
    pub fn seal_position(
        &self,
        tenant: &str,
        query: QueryFingerprint,
        position: &[u8],
        now_secs: i64,
    ) -> String {
        let mut payload = Vec::with_capacity(1 + 8 + position.len() + 16 + tenant.len());
        payload.push(TOKEN_VERSION);
        payload.extend_from_slice(&now_secs.to_be_bytes());
        payload.extend_from_slice(position);
        let body_len = payload.len();
        payload.extend_from_slice(&query.0);
        payload.extend_from_slice(tenant.as_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        // The tenant is not carried in the token (it is known from the caller); it only enters the MAC.
        let mut token = payload[..body_len].to_vec();
        token.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The position `seal_position` sealed, if `token` is ours for this tenant and query (whose
    /// positions are `N` bytes long) and has not expired.
    pub fn open_position<const N: usize>(
        &self,
        field: &str,
        token: &str,
        tenant: &str,
        query: QueryFingerprint,
        now_secs: i64,
    ) -> Result<[u8; N]> {
        let invalid = || {
            Error::invalid_field(
                field,
                "is not a page token of this query: pass back next_page_token unchanged, with the same filters",
            )
        };
        if token.len() > MAX_TOKEN_CHARS {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() != 1 + 8 + N + MAC_LEN || raw[0] != TOKEN_VERSION {
            return Err(invalid());
        }
        let (body, tag) = raw.split_at(1 + 8 + N);
        let mut payload = body.to_vec();
        payload.extend_from_slice(&query.0);
        payload.extend_from_slice(tenant.as_bytes());
        self.mac(&payload)
            .verify_truncated_left(tag)
            .map_err(|_| invalid())?;
        let issued = i64::from_be_bytes(body[1..9].try_into().map_err(|_| invalid())?);
        if now_secs - issued > TOKEN_LIFETIME_SECS {
            return Err(Error::invalid_field(
                field,
                "has expired: start again from the first page",
            ));
        }
        body[9..].try_into().map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PageTokenKey {
        PageTokenKey::new([7; 32])
    }

    #[test]
    fn page_size_follows_aip_158() {
        assert_eq!(page_size("p", 0).unwrap(), 50);
        assert_eq!(page_size("p", 1).unwrap(), 1);
        assert_eq!(page_size("p", 1000).unwrap(), 1000);
        assert_eq!(page_size("p", 1001).unwrap(), 1000);
        assert_eq!(page_size("p", i32::MAX).unwrap(), 1000);
        assert!(page_size("p", -1).is_err());
    }

    #[test]
    fn a_token_opens_only_for_its_tenant_and_query() {
        let q = QueryFingerprint::of(&["customers", "industry=retail"]);
        let other = QueryFingerprint::of(&["customers", "industry=energy"]);
        let id = Uuid::now_v7();
        let token = key().seal("acme", q, id, 1000);
        assert_eq!(key().open("t", &token, "acme", q, 1000).unwrap(), id);
        assert!(key().open("t", &token, "globex", q, 1000).is_err());
        assert!(key().open("t", &token, "acme", other, 1000).is_err());
        assert!(
            PageTokenKey::new([8; 32])
                .open("t", &token, "acme", q, 1000)
                .is_err()
        );
        assert!(
            key()
                .open("t", &token, "acme", q, 1000 + TOKEN_LIFETIME_SECS + 1)
                .is_err()
        );
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let q = QueryFingerprint::of(&["x"]);
        let token = key().seal("acme", q, Uuid::now_v7(), 0);
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[byte] ^= 1 << bit;
                let bad = URL_SAFE_NO_PAD.encode(bad);
                assert!(key().open("t", &bad, "acme", q, 0).is_err());
            }
        }
        for len in 0..token.len() {
            assert!(key().open("t", &token[..len], "acme", q, 0).is_err());
        }
    }

    #[test]
    fn fingerprints_do_not_collide_on_concatenation() {
        assert_ne!(
            QueryFingerprint::of(&["ab", "c"]),
            QueryFingerprint::of(&["a", "bc"])
        );
    }
}
