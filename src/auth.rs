//! Authentication: verifies `authorization: Bearer <JWT>` and hands the domain a `Caller`.
//!
//! HS256 with a shared secret for development, RS256 or ES256 with a public key for production.
//! Validation is explicit: one algorithm per key, `exp` required, `nbf` checked, `iss`/`aud`
//! required and checked when configured, 30 s of leeway. Attached per service (not server-wide) so
//! that health and reflection stay open.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::domain::access::{Caller, Role};
use crate::error::{Error, Problem};
use crate::reason;

/// Leeway for `exp` and `nbf`, for clock skew between the issuer and us.
const LEEWAY_SECS: u64 = 30;
/// Tenant ids: short and plain, because they lead every key and appear in logs.
const TENANT_MAX: usize = 64;
/// Longest `sub` claim, in characters.
const SUBJECT_MAX: usize = 128;
/// Verified tokens remembered at once (a digest and a caller each). Clients reuse a token until it
/// expires, so a service has about as many live tokens as callers; past the bound the cache
/// forgets what it holds and starts again, which costs one full verification per token.
const VERIFIED_TOKENS_MAX: usize = 4096;
/// Unknown role names of a token kept to name in a refusal, and the bytes of each: enough to
/// spot a typo, and small enough that the refusal's message keeps its advice.
const MAX_UNKNOWN_ROLES_NAMED: usize = 3;
const UNKNOWN_ROLE_MAX_BYTES: usize = 32;
/// Bounds on the string-list claims a caller keeps (team claims among them): a token is issued
/// by a trusted provider, but what it carries is held per cached caller and may be named in a
/// request, so it is bounded like any other input.
const LIST_CLAIMS_MAX: usize = 16;
const LIST_CLAIM_NAME_MAX_BYTES: usize = 64;
const LIST_CLAIM_VALUES_MAX: usize = 100;
const LIST_CLAIM_VALUE_MAX_BYTES: usize = 128;

/// The claims this service reads and mints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Every other claim. Those that are strings or lists of strings become the caller's
    /// `claims`: which of them name teams is the tenant's setting, not the token's.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Where the verification key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// HS256 shared secret (development).
    Secret(Vec<u8>),
    /// PEM public key, RSA (RS256) or EC P-256 (ES256).
    PublicKeyPem(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub key: KeySource,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Verifies tokens; cheap to clone into every service's interceptor.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Verifier>,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
    verified: VerifiedTokens,
}

/// Tokens whose signature and claims have been checked, by the SHA-256 of their exact text.
///
/// A caller sends the same token on every call until it expires. Checking its signature and
/// parsing its JSON on every call cost a fifth of a GetCustomer's server CPU (SQLite, c=64:
/// 123–129 µs per call, against 95–106 µs with tokens remembered). What is remembered is only what
/// a full verification concluded, and the time checks (`exp`, `nbf`, with the same leeway) are
/// made again on every use, so a remembered token is refused exactly when a fresh verification
/// would refuse it. The key is fixed for the life of the process, so nothing else a verification
/// depends on can change.
///
/// The map keeps digests, not tokens: an expired entry stays until the map fills, and a heap dump
/// or core file of the server should not hand out bearer tokens. Hashing a 300-byte token took
/// 0.17 µs on the build machine (which has SHA-NI), once per call, and SHA-256 collisions are out
/// of reach, so a digest stands for one text.
#[derive(Default)]
struct VerifiedTokens {
    entries: Mutex<HashMap<TokenDigest, Verified>>,
}

type TokenDigest = [u8; 32];

fn digest(token: &str) -> TokenDigest {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

struct Verified {
    caller: Caller,
    exp: u64,
    nbf: Option<u64>,
}

impl Verified {
    /// Whether the token's time window holds at `now` (seconds), as `jsonwebtoken` judges it.
    fn current(&self, now: u64) -> bool {
        self.exp >= now.saturating_sub(LEEWAY_SECS)
            && self
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(LEEWAY_SECS))
    }
}

impl VerifiedTokens {
    /// The caller of a token verified before, if its time window still holds at `now`.
    fn get(&self, key: &TokenDigest, now: u64) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        let verified = entries.get(key)?;
        verified.current(now).then(|| verified.caller.clone())
    }

    fn remember(&self, key: TokenDigest, verified: Verified, now: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= VERIFIED_TOKENS_MAX {
            entries.retain(|_, v| v.current(now));
            if entries.len() >= VERIFIED_TOKENS_MAX {
                entries.clear();
            }
        }
        entries.insert(key, verified);
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let (key, algorithm) = match &config.key {
            KeySource::Secret(secret) => {
                if secret.len() < 32 {
                    return Err("the JWT secret must be at least 32 bytes".into());
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256)
            }
            KeySource::PublicKeyPem(pem) => match DecodingKey::from_rsa_pem(pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(_) => (
                    DecodingKey::from_ec_pem(pem).map_err(|e| {
                        format!("the JWT public key is neither an RSA nor an EC PEM key: {e}")
                    })?,
                    Algorithm::ES256,
                ),
            },
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            inner: Arc::new(Verifier {
                key,
                validation,
                verified: VerifiedTokens::default(),
            }),
        })
    }

    /// The caller a bearer token stands for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, Error> {
        let now = jsonwebtoken::get_current_timestamp();
        let key = digest(token);
        if let Some(caller) = self.inner.verified.get(&key, now) {
            return Ok(caller);
        }
        let verified = self.verify_fully(token)?;
        let caller = verified.caller.clone();
        self.inner.verified.remember(key, verified, now);
        Ok(caller)
    }

    /// Checks the header, the signature and every claim.
    fn verify_fully(&self, token: &str) -> Result<Verified, Error> {
        let Verifier {
            key, validation, ..
        } = &*self.inner;
        // Before the signature: a refused token is never remembered (`verify` only remembers
        // what this function accepts), so a token with `crit` is refused on every use.
        if has_critical_header(token) {
            return Err(unauthenticated(
                reason::INVALID_TOKEN,
                "the token's header lists critical extensions (crit), and this server \
                 understands none: issue the token without crit",
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "the token has expired",
                K::ImmatureSignature => "the token is not valid yet (nbf)",
                K::InvalidSignature => "the token's signature is invalid",
                K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                    "the token's algorithm is not accepted"
                }
                K::InvalidIssuer => "the token's issuer is not accepted",
                K::InvalidAudience => "the token's audience is not accepted",
                K::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is malformed",
            };
            unauthenticated(reason::INVALID_TOKEN, why)
        })?;
        let claims = data.claims;
        if !valid_subject(&claims.sub) {
            return Err(unauthenticated(
                reason::INVALID_TOKEN,
                "the token's sub claim is empty or malformed",
            ));
        }
        if !valid_tenant(&claims.tenant) {
            return Err(unauthenticated(
                reason::INVALID_TOKEN,
                "the token's tenant claim must be 1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        let (known, unknown): (Vec<&String>, Vec<&String>) = claims
            .roles
            .iter()
            .partition(|name| Role::parse(name).is_some());
        let roles = known
            .into_iter()
            .filter_map(|name| Role::parse(name))
            .collect();
        // Named back in a refusal, so bounded like anything an error echoes.
        let unknown_roles = unknown
            .into_iter()
            .take(MAX_UNKNOWN_ROLES_NAMED)
            .map(|name| crate::error::truncate(name.clone(), UNKNOWN_ROLE_MAX_BYTES))
            .collect();
        Ok(Verified {
            caller: Caller {
                tenant: claims.tenant,
                subject: claims.sub,
                roles,
                unknown_roles,
                claims: list_claims(claims.other),
                trace_id: String::new(),
            },
            exp: claims.exp,
            nbf: claims.nbf,
        })
    }

    /// The tonic interceptor: puts the verified `Caller` in the request's extensions.
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").ok_or_else(|| {
            unauthenticated(reason::MISSING_TOKEN, "send authorization: Bearer <token>")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                unauthenticated(
                    reason::MISSING_TOKEN,
                    "the authorization header must be 'Bearer <token>'",
                )
            })?;
        let mut caller = self.verify(token.trim())?;
        // The call's span carries the trace when traces are exported (the caller's own trace, or
        // a new one); otherwise the caller's `traceparent` is the only trace there is.
        caller.trace_id = crate::telemetry::current_trace_id()
            .or_else(|| {
                request
                    .metadata()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(trace_id)
            })
            .unwrap_or_default();
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Attached to each service but health and reflection, which stay open to probes and grpcurl.
impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.intercept(request)
    }
}

/// The claims that are a string or a list of strings, bounded: at most `LIST_CLAIMS_MAX` of them,
/// each value at most `LIST_CLAIM_VALUE_MAX_BYTES` (longer ones are dropped, not shortened, since
/// a shortened team name could name another team), empty values dropped.
fn list_claims(other: BTreeMap<String, serde_json::Value>) -> BTreeMap<String, Vec<String>> {
    use serde_json::Value;
    let fits = |v: &str| !v.is_empty() && v.len() <= LIST_CLAIM_VALUE_MAX_BYTES;
    other
        .into_iter()
        .filter(|(name, _)| name.len() <= LIST_CLAIM_NAME_MAX_BYTES)
        .filter_map(|(name, value)| {
            let values: Vec<String> = match value {
                Value::String(one) => vec![one],
                Value::Array(many) => many
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => return None,
            };
            let mut values: Vec<String> = values.into_iter().filter(|v| fits(v)).collect();
            values.sort();
            values.dedup();
            values.truncate(LIST_CLAIM_VALUES_MAX);
            Some((name, values))
        })
        .take(LIST_CLAIMS_MAX)
        .collect()
}

/// Whether the token's JOSE header has a `crit` member, whatever its value. RFC 7515 §4.1.11: a
/// recipient that does not understand every extension `crit` lists must refuse the token, and
/// this server understands none. `jsonwebtoken` parses `crit` but does not act on it, and reads
/// `"crit": null` as absent, so the header is read here as plain JSON. A header that does not
/// decode is left to `jsonwebtoken`, which refuses it as malformed.
fn has_critical_header(token: &str) -> bool {
    use base64::Engine as _;
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()
        })
        .is_some_and(|members| members.contains_key("crit"))
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.split('-');
    let (_version, trace, _parent, _flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace != "0".repeat(32);
    valid.then(|| trace.to_ascii_lowercase())
}

/// The `sub` claim: who the caller is, as audit entries and requests name them.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.chars().count() <= SUBJECT_MAX
        && !subject.chars().any(char::is_control)
}

pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= TENANT_MAX
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn unauthenticated(reason: &'static str, message: &str) -> Error {
    Error::Unauthenticated(Problem::new(reason, message))
}

/// What a development token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub tenant: String,
    pub subject: String,
    pub roles: Vec<String>,
    pub ttl: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Extra claims, each a list of strings (e.g. the teams a user belongs to).
    pub claims: BTreeMap<String, Vec<String>>,
}

impl TokenRequest {
    /// The server's own rules for the claims, so that a minted token is one the server accepts
    /// and means what was asked: an unknown role would be dropped there without a word.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_tenant(&self.tenant) {
            return Err(format!(
                "--tenant {:?} is not a tenant the server accepts: 1 to {TENANT_MAX} letters, \
                 digits, '.', '_' or '-' (e.g. demo, acme-eu)",
                self.tenant
            ));
        }
        if !valid_subject(&self.subject) {
            return Err(format!(
                "--user {:?} is not a user the server accepts: 1 to {SUBJECT_MAX} characters, \
                 none of them control characters",
                self.subject
            ));
        }
        let accepted = || {
            Role::ALL
                .iter()
                .map(|role| role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.roles.is_empty() {
            return Err(format!("give at least one --role: {}", accepted()));
        }
        let unknown: Vec<&str> = self
            .roles
            .iter()
            .map(String::as_str)
            .filter(|name| Role::parse(name).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "unknown role {}: the server knows {}",
                unknown
                    .iter()
                    .map(|name| format!("{name:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                accepted()
            ));
        }
        if self.ttl.as_secs() == 0 {
            return Err(
                "--ttl must be at least 1s: a token that expires at once is refused".into(),
            );
        }
        self.validate_claims()
    }

    /// Extra claims the server would keep as they are: not a claim it reads itself, and within
    /// the bounds it keeps.
    fn validate_claims(&self) -> Result<(), String> {
        const OWN: [&str; 8] = ["sub", "tenant", "roles", "exp", "nbf", "iss", "aud", "iat"];
        if self.claims.len() > LIST_CLAIMS_MAX {
            return Err(format!("at most {LIST_CLAIMS_MAX} --claim"));
        }
        for (name, values) in &self.claims {
            if OWN.contains(&name.as_str()) {
                return Err(format!("--claim {name}: the token sets {name} itself"));
            }
            if name.len() > LIST_CLAIM_NAME_MAX_BYTES || values.len() > LIST_CLAIM_VALUES_MAX {
                return Err(format!(
                    "--claim {name}: at most {LIST_CLAIM_NAME_MAX_BYTES} bytes of name and \
                     {LIST_CLAIM_VALUES_MAX} values"
                ));
            }
            if let Some(long) = values.iter().find(|v| v.len() > LIST_CLAIM_VALUE_MAX_BYTES) {
                return Err(format!(
                    "--claim {name}: {long:?} is longer than {LIST_CLAIM_VALUE_MAX_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// Signs an HS256 development token.
pub fn mint(secret: &[u8], request: &TokenRequest) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        sub: request.subject.clone(),
        tenant: request.tenant.clone(),
        roles: request.roles.clone(),
        exp: now + request.ttl.as_secs(),
        nbf: Some(now),
        iss: request.issuer.clone(),
        aud: request.audience.clone(),
        other: request
            .claims
            .iter()
            .map(|(name, values)| (name.clone(), serde_json::json!(values)))
            .collect(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| e.to_string())
}

/// Where the development secret of a SQLite database lives: beside its file.
pub fn dev_secret_path(sqlite_file: &Path) -> PathBuf {
    let mut name = sqlite_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "crm.db".into());
    name.push(".dev-secret");
    sqlite_file.with_file_name(name)
}

/// Reads the development secret, making one (32 random bytes, hex, owner-only) the first time.
pub fn load_or_create_dev_secret(path: &Path) -> std::io::Result<(Vec<u8>, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text.trim().as_bytes().to_vec(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            write_private(path, &secret)?;
            Ok((secret.into_bytes(), true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn request(roles: &[&str]) -> TokenRequest {
        TokenRequest {
            tenant: "acme".into(),
            subject: "alice".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ttl: Duration::from_secs(60),
            issuer: None,
            audience: None,
            claims: BTreeMap::new(),
        }
    }

    fn authenticator(issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        Authenticator::new(&AuthConfig {
            key: KeySource::Secret(SECRET.to_vec()),
            issuer: issuer.map(Into::into),
            audience: audience.map(Into::into),
        })
        .unwrap()
    }

    #[test]
    fn a_minted_token_verifies_and_unknown_roles_are_dropped() {
        let token = mint(SECRET, &request(&["supervisor", "wizard"])).unwrap();
        let caller = authenticator(None, None).verify(&token).unwrap();
        assert_eq!(caller.tenant, "acme");
        assert_eq!(caller.subject, "alice");
        assert_eq!(caller.roles, vec![Role::Supervisor]);
        assert_eq!(caller.unknown_roles, vec!["wizard".to_owned()]);
    }

    #[test]
    fn configured_issuer_and_audience_are_required() {
        let plain = mint(SECRET, &request(&["admin"])).unwrap();
        assert!(authenticator(Some("idp"), None).verify(&plain).is_err());
        assert!(authenticator(None, Some("crm")).verify(&plain).is_err());
        let mut with = request(&["admin"]);
        with.issuer = Some("idp".into());
        with.audience = Some("crm".into());
        let token = mint(SECRET, &with).unwrap();
        assert!(
            authenticator(Some("idp"), Some("crm"))
                .verify(&token)
                .is_ok()
        );
        assert!(
            authenticator(Some("other"), Some("crm"))
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn a_remembered_token_is_served_only_inside_its_time_window() {
        let tokens = VerifiedTokens::default();
        let caller = authenticator(None, None)
            .verify(&mint(SECRET, &request(&["admin"])).unwrap())
            .unwrap();
        let verified = Verified {
            caller: caller.clone(),
            exp: 10_000,
            nbf: Some(5_000),
        };
        tokens.remember(digest("t"), verified, 6_000);
        assert_eq!(tokens.get(&digest("t"), 6_000), Some(caller.clone()));
        assert_eq!(
            tokens.get(&digest("u"), 6_000),
            None,
            "only the exact text is remembered"
        );
        // The leeway, as jsonwebtoken applies it, on both ends.
        assert!(tokens.get(&digest("t"), 10_000 + LEEWAY_SECS).is_some());
        assert_eq!(
            tokens.get(&digest("t"), 10_001 + LEEWAY_SECS),
            None,
            "expired"
        );
        assert!(tokens.get(&digest("t"), 5_000 - LEEWAY_SECS).is_some());
        assert_eq!(
            tokens.get(&digest("t"), 4_999 - LEEWAY_SECS),
            None,
            "not valid yet"
        );
    }

    #[test]
    fn remembered_tokens_stay_bounded() {
        let tokens = VerifiedTokens::default();
        let caller = authenticator(None, None)
            .verify(&mint(SECRET, &request(&[])).unwrap())
            .unwrap();
        for i in 0..VERIFIED_TOKENS_MAX + 10 {
            let verified = Verified {
                caller: caller.clone(),
                // The first half expired by the time the cache fills.
                exp: if i < VERIFIED_TOKENS_MAX / 2 {
                    100
                } else {
                    10_000
                },
                nbf: None,
            };
            tokens.remember(digest(&format!("t{i}")), verified, 1_000);
        }
        let len = tokens.entries.lock().unwrap().len();
        assert!(len <= VERIFIED_TOKENS_MAX, "{len}");
        assert!(tokens.get(&digest("t0"), 1_000).is_none());
        // Expired tokens went first, out of the map itself; live ones from before the fill stayed.
        assert!(!tokens.entries.lock().unwrap().contains_key(&digest("t0")));
        let live = format!("t{}", VERIFIED_TOKENS_MAX / 2);
        assert!(tokens.get(&digest(&live), 1_000).is_some());
        let last = format!("t{}", VERIFIED_TOKENS_MAX + 9);
        assert!(tokens.get(&digest(&last), 1_000).is_some());
    }

    #[test]
    fn a_verified_token_does_not_vouch_for_a_tampered_one() {
        let auth = authenticator(None, None);
        let token = mint(SECRET, &request(&["admin"])).unwrap();
        let first = auth.verify(&token).unwrap();
        assert_eq!(
            auth.verify(&token).unwrap(),
            first,
            "served again, the same"
        );
        // A signature character that carries six bits of the signature, none of them padding.
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(auth.verify(&tampered).is_err());
        // A token from another key is refused even after a good one was remembered.
        let other = mint(b"another-secret-0123456789abcdef!", &request(&["admin"])).unwrap();
        assert!(auth.verify(&other).is_err());
    }

    /// A token signed with `SECRET` whose header is exactly `header`.
    fn with_header(header: &str) -> String {
        use base64::Engine as _;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = serde_json::json!({"sub": "alice", "tenant": "acme", "roles": ["admin"],
            "exp": jsonwebtoken::get_current_timestamp() + 60});
        let input = format!("{}.{}", b64.encode(header), b64.encode(claims.to_string()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_token_with_crit_is_refused_and_never_remembered() {
        let auth = authenticator(None, None);
        let plain = with_header(r#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(
            auth.verify(&plain).is_ok(),
            "the hand-made token is well signed"
        );
        for header in [
            r#"{"alg":"HS256","crit":["x-unknown"],"x-unknown":1}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":null}"#,
        ] {
            let token = with_header(header);
            for _ in 0..2 {
                let Err(Error::Unauthenticated(problem)) = auth.verify(&token) else {
                    panic!("{header} accepted");
                };
                assert!(problem.message.contains("crit"), "{}", problem.message);
            }
            let remembered = auth.inner.verified.entries.lock().unwrap();
            assert!(!remembered.contains_key(&digest(&token)), "{header}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let config = AuthConfig {
            key: KeySource::Secret(b"short".to_vec()),
            issuer: None,
            audience: None,
        };
        assert!(Authenticator::new(&config).is_err());
    }

    #[test]
    fn tenants_are_plain_identifiers() {
        assert!(valid_tenant("acme-eu.1"));
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }
}
