//! Accounts: made from the command line (and on a hub's first start).

use super::views::CreatedAccount;
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
