//! Accounts: made from the command line (and on a hub's first start); their owner token
//! replaced by the owner, or, when it is lost, by whoever holds the data directory.

use super::{
    views::{AccountView, CreatedAccount, RotatedAccountToken},
    Caller,
};
use crate::{
    clock,
    crypto::{self, OWNER_TOKEN_PREFIX},
    domain::ids::AccountId,
    error::ApiError,
    store::Store,
};

pub async fn create_account(store: &Store, name: &str) -> Result<CreatedAccount, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::domain::MAX_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("`name` must be 1 to {} characters", crate::domain::MAX_NAME),
        ));
    }
    let id = AccountId::generate();
    let token = crypto::new_token(OWNER_TOKEN_PREFIX)?;
    store
        .insert_account(&id, name, &token.hash, clock::now_ms())
        .await?;
    Ok(CreatedAccount {
        account_id: id.to_string(),
        name: name.to_owned(),
        token: token.plaintext.expose().to_owned(),
    })
}

/// A new owner token for `account_id`. The old one stops with the commit, and so does
/// every dashboard session of the account but `keep_session` (the hash of the one asking).
pub async fn replace_token(
    store: &Store,
    account_id: &AccountId,
    keep_session: Option<&[u8]>,
) -> Result<RotatedAccountToken, ApiError> {
    let token = crypto::new_token(OWNER_TOKEN_PREFIX)?;
    if !store
        .replace_account_token(account_id, &token.hash, keep_session)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    tracing::info!(account_id = %account_id, "owner token rotated");
    Ok(RotatedAccountToken {
        account_id: account_id.to_string(),
        token: token.plaintext.expose().to_owned(),
    })
}

/// The owner's own rotation, from the API or the dashboard.
pub async fn rotate_token(
    store: &Store,
    caller: &Caller,
    keep_session: Option<&[u8]>,
) -> Result<RotatedAccountToken, ApiError> {
    match caller {
        Caller::Owner(account_id) => replace_token(store, account_id, keep_session).await,
        Caller::Agent(_) => Err(ApiError::OwnerOnly),
    }
}

pub async fn list(store: &Store) -> Result<Vec<AccountView>, ApiError> {
    Ok(store
        .list_accounts()
        .await?
        .into_iter()
        .map(|a| AccountView {
            account_id: a.id.to_string(),
            name: a.name,
            created_at: clock::rfc3339(a.created_at),
        })
        .collect())
}
