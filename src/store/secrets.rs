//! Secrets shared by every replica through the database, made by whichever replica needs one first.

use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, sea_query::OnConflict};

use super::entity::service_secret::{self, Entity};
use super::idempotency::{hex_decode, hex_encode};
use crate::error::{Error, Result};

/// The 32-byte secret called `name`, created at random if it does not exist yet. Concurrent
/// creators race on the primary key; all of them then read the one that won.
pub async fn get_or_create(conn: &impl ConnectionTrait, name: &str) -> Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(Error::internal)?;
    let row = service_secret::ActiveModel {
        name: Set(name.to_owned()),
        secret: Set(hex_encode(&fresh)),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(service_secret::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    let stored = Entity::find_by_id(name.to_owned())
        .one(conn)
        .await?
        .ok_or_else(|| Error::internal("service secret vanished after insert"))?;
    let mut secret = [0u8; 32];
    hex_decode(&stored.secret, &mut secret)?;
    Ok(secret)
}
