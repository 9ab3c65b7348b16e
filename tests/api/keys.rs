//! Production keys: RS256 and ES256 tokens verified with a public key; an HS256 token "signed" with
//! the public key as its secret (the RS/HS key-confusion attack) is refused. Database-independent:
//! SQLite only.

use std::time::{SystemTime, UNIX_EPOCH};

use crm_service::app::JwtSettings;
use crm_service::proto::crm::v1 as pb;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;

use crate::common::{Db, TestApp, assert_status};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn claims() -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({"sub": "svc-billing", "tenant": "acme", "roles": ["service"], "exp": now + 300})
}

fn sign(alg: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims(), key).unwrap()
}

async fn app_with_public_key(file: &str) -> TestApp {
    let jwt = JwtSettings {
        public_key_file: Some(fixture(file)),
        ..Default::default()
    };
    TestApp::spawn_with(Db::Sqlite, jwt).await.expect("sqlite")
}

async fn list(
    app: &TestApp,
    token: &str,
) -> Result<tonic::Response<pb::ListCustomersResponse>, tonic::Status> {
    app.customers_with_token(Some(token))
        .list_customers(pb::ListCustomersRequest::default())
        .await
}

/// Database-independent: these run on SQLite only (named sqlite:: so CI counts them).
mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_rs256_token_verifies_against_the_configured_public_key() {
        let app = app_with_public_key("rs256-public.pem").await;
        let private = std::fs::read(fixture("rs256-private.pem")).unwrap();
        let token = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(&private).unwrap(),
        );
        list(&app, &token).await.expect("accepted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_es256_token_verifies_against_the_configured_public_key() {
        let app = app_with_public_key("es256-public.pem").await;
        let private = std::fs::read(fixture("es256-private.pem")).unwrap();
        let token = sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(&private).unwrap(),
        );
        list(&app, &token).await.expect("accepted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_hs256_token_keyed_with_the_public_key_is_unauthenticated() {
        let app = app_with_public_key("rs256-public.pem").await;
        let public = std::fs::read(fixture("rs256-public.pem")).unwrap();
        let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(&public));
        assert_status(
            list(&app, &forged).await,
            Code::Unauthenticated,
            "INVALID_TOKEN",
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_from_another_key_pair_is_unauthenticated() {
        let app = app_with_public_key("es256-public.pem").await;
        let other = std::fs::read(fixture("rs256-private.pem")).unwrap();
        let token = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(&other).unwrap(),
        );
        assert_status(
            list(&app, &token).await,
            Code::Unauthenticated,
            "INVALID_TOKEN",
        );
    }
}
