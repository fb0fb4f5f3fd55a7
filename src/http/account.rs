//! `/v1/account`: the owner's own account.

use actix_web::{post, web, HttpRequest, HttpResponse};

use crate::{
    crypto,
    error::{ApiError, ErrorBody},
    http::auth::{bearer_token, session_cookie_value},
    service::{accounts, views::RotatedAccountToken, Caller},
    state::Hub,
};

pub fn configure(routes: &mut super::Routes) {
    routes.documented(rotate_token);
}

/// Rotate the owner token.
///
/// The new token is shown only here. The old one stops working at once, and every
/// dashboard session of the account ends, except the one asking (when it is one): a
/// leaked token may have been used to sign in.
#[utoipa::path(
    tag = "account",
    operation_id = "rotateAccountToken",
    security(("ownerToken" = [])),
    responses(
        (status = 200, description = "The new owner token", body = RotatedAccountToken),
        (status = 401, description = "No owner token", body = ErrorBody),
    ),
)]
#[post("/v1/account/token/rotate")]
async fn rotate_token(
    hub: web::Data<Hub>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A bearer token wins over the cookie, so the cookie is the caller's session only
    // when there is no bearer token.
    let session = bearer_token(&req)
        .is_none()
        .then(|| session_cookie_value(&req))
        .flatten()
        .map(|cookie| crypto::hash_token(&cookie));
    let rotated =
        accounts::rotate_token(&hub.store, &caller, session.as_ref().map(|h| &h[..])).await?;
    Ok(HttpResponse::Ok().json(rotated))
}
