//! `/auth/*` and `/me*`: sign-up, tokens, profile and addresses.

use std::net::IpAddr;

use marketplace_core::{
    Address, AddressId, AddressInput, NewAccount, Principal, ProfileUpdate, TokenPair, User,
};
use serde::Deserialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, client_ip, created, json, no_content, ok};
use crate::problem::reject;

/// Credentials for `/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login email.
    #[schema(max_length = 254)]
    pub email: String,
    /// Password.
    #[schema(max_length = 128)]
    pub password: String,
}

/// A refresh token, for `/auth/refresh` and `/auth/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The opaque refresh token from a login or refresh.
    pub refresh_token: String,
}

/// A mailed single-use token, for `/auth/verify-email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the mail.
    pub token: String,
}

/// Starts a password reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The account's email.
    pub email: String,
}

/// Completes a password reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The token from the mail.
    pub token: String,
    /// The new password (8..=128 characters).
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
}

/// Opens a buyer or seller account and mails an email-verification token.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = NewAccount,
    responses((status = 201, description = "the new account", body = User),
              (status = 409, description = "email already registered", body = crate::problem::Problem)))]
pub async fn register(app: App, body: NewAccount) -> Result<Response, Rejection> {
    Ok(created(&app.market.register(body).await.map_err(reject)?))
}

/// Signs in; failures are throttled per account and per client address.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "an access and a refresh token", body = TokenPair),
              (status = 429, description = "too many failed attempts; see Retry-After", body = crate::problem::Problem)))]
pub async fn login(
    app: App,
    ip: Option<IpAddr>,
    body: LoginRequest,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .login(&body.email, &body.password, ip)
        .await
        .map_err(reject)?))
}

/// Exchanges a refresh token for a new pair; reuse of a spent token revokes the login.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "a new token pair", body = TokenPair)))]
pub async fn refresh(app: App, body: RefreshRequest) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .refresh(&body.refresh_token)
        .await
        .map_err(reject)?))
}

/// Revokes the login a refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out")))]
pub async fn logout(app: App, body: RefreshRequest) -> Result<Response, Rejection> {
    app.market
        .logout(&body.refresh_token)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Confirms an email address with the mailed token.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 204, description = "email verified")))]
pub async fn verify_email(app: App, body: TokenRequest) -> Result<Response, Rejection> {
    app.market.verify_email(&body.token).await.map_err(reject)?;
    Ok(no_content())
}

/// Mails a fresh verification token to the signed-in user.
#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", tag = "auth", security(("bearer" = [])),
    responses((status = 202, description = "a new token was mailed")))]
pub async fn resend_verification(app: App, who: Principal) -> Result<Response, Rejection> {
    app.market.resend_verification(&who).await.map_err(reject)?;
    let mut res = no_content();
    *res.status_mut() = http::StatusCode::ACCEPTED;
    Ok(res)
}

/// Mails a password-reset token if the account exists; answers the same either way.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202, description = "a token was mailed if the account exists")))]
pub async fn password_reset(app: App, body: ResetRequest) -> Result<Response, Rejection> {
    app.market
        .request_password_reset(&body.email)
        .await
        .map_err(reject)?;
    let mut res = no_content();
    *res.status_mut() = http::StatusCode::ACCEPTED;
    Ok(res)
}

/// Sets a new password with the mailed token; every login of the account is revoked.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204, description = "password changed")))]
pub async fn password_reset_confirm(app: App, body: ResetConfirm) -> Result<Response, Rejection> {
    app.market
        .reset_password(&body.token, &body.password)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "profile", security(("bearer" = [])),
    responses((status = 200, description = "the profile", body = User)))]
pub async fn me(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.profile(&who).await.map_err(reject)?))
}

/// Changes the caller's name and phone; absent fields stay, `null` clears.
#[utoipa::path(patch, path = "/api/v1/me", tag = "profile", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, description = "the updated profile", body = User)))]
pub async fn update_me(
    app: App,
    who: Principal,
    body: ProfileUpdate,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .update_profile(&who, body)
        .await
        .map_err(reject)?))
}

/// The buyer's delivery addresses.
#[utoipa::path(get, path = "/api/v1/me/addresses", tag = "profile", security(("bearer" = [])),
    responses((status = 200, description = "addresses, oldest first", body = Vec<Address>)))]
pub async fn addresses(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.addresses(&who).await.map_err(reject)?))
}

/// Adds a delivery address (the first becomes the default).
#[utoipa::path(post, path = "/api/v1/me/addresses", tag = "profile", security(("bearer" = [])), request_body = AddressInput,
    responses((status = 201, description = "the new address", body = Address)))]
pub async fn add_address(
    app: App,
    who: Principal,
    body: AddressInput,
) -> Result<Response, Rejection> {
    Ok(created(
        &app.market.add_address(&who, body).await.map_err(reject)?,
    ))
}

/// Changes an address; absent fields stay.
#[utoipa::path(patch, path = "/api/v1/me/addresses/{id}", tag = "profile", security(("bearer" = [])), request_body = AddressInput,
    params(("id" = String, Path, description = "address id")),
    responses((status = 200, description = "the updated address", body = Address)))]
pub async fn update_address(
    id: AddressId,
    app: App,
    who: Principal,
    body: AddressInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .update_address(&who, id, body)
        .await
        .map_err(reject)?))
}

/// Deletes an address; past orders keep their copy.
#[utoipa::path(delete, path = "/api/v1/me/addresses/{id}", tag = "profile", security(("bearer" = [])),
    params(("id" = String, Path, description = "address id")),
    responses((status = 204, description = "deleted")))]
pub async fn delete_address(
    id: AddressId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    app.market.delete_address(&who, id).await.map_err(reject)?;
    Ok(no_content())
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let with = || crate::extract::app(a.clone());
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("auth" / "register")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(register);
    let r2 = warp::path!("auth" / "login")
        .and(warp::post())
        .and(with())
        .and(client_ip())
        .and(json(limit))
        .and_then(login);
    let r3 = warp::path!("auth" / "refresh")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(refresh);
    let r4 = warp::path!("auth" / "logout")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(logout);
    let r5 = warp::path!("auth" / "verify-email")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(verify_email);
    let r6 = warp::path!("auth" / "verify-email" / "resend")
        .and(warp::post())
        .and(authed())
        .and_then(resend_verification);
    let r7 = warp::path!("auth" / "password-reset")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(password_reset);
    let r8 = warp::path!("auth" / "password-reset" / "confirm")
        .and(warp::post())
        .and(with())
        .and(json(limit))
        .and_then(password_reset_confirm);
    let r9 = warp::path!("me")
        .and(warp::get())
        .and(authed())
        .and_then(me);
    let r10 = warp::path!("me")
        .and(warp::patch())
        .and(authed())
        .and(json(limit))
        .and_then(update_me);
    let r11 = warp::path!("me" / "addresses")
        .and(warp::get())
        .and(authed())
        .and_then(addresses);
    let r12 = warp::path!("me" / "addresses")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(add_address);
    let r13 = warp::path!("me" / "addresses" / AddressId)
        .and(warp::patch())
        .and(authed())
        .and(json(limit))
        .and_then(update_address);
    let r14 = warp::path!("me" / "addresses" / AddressId)
        .and(warp::delete())
        .and(authed())
        .and_then(delete_address);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14)
}
