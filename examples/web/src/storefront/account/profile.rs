//! The account page: the profile (name, phone), the email address and its
//! confirmation mail, and a buyer's delivery addresses (list, add, edit,
//! delete).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{Address, AddressId, ErrorKind, ProfileUpdate};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::super::{AddressFields, blank};
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Problem, SeeOther, form_problem, path_id, render_with,
};
use crate::session::{SignedIn, Viewer};

/// The account page and the address pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/account", get(account))
        .route("/account/profile", post(save_profile).get(back))
        .route("/account/verify-email/resend", post(resend))
        .route("/account/addresses", post(add_address).get(back))
        .route("/account/addresses/new", get(new_address))
        .route(
            "/account/addresses/{id}",
            get(edit_address).post(save_address),
        )
        .route("/account/addresses/{id}/delete", post(delete_address))
}

/// A sign-in that came back to the address of a form goes to the account.
async fn back() -> SeeOther {
    SeeOther::to("/account")
}

#[derive(Default, Deserialize, Serialize)]
struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
}

/// `/account`.
async fn account(State(app): State<App>, viewer: Viewer, who: SignedIn) -> PageResult {
    let form = ProfileForm {
        name: who.user.name.clone().unwrap_or_default(),
        phone: who.user.phone.clone().unwrap_or_default(),
    };
    show_account(&app, &viewer, &who, StatusCode::OK, &form, None).await
}

async fn show_account(
    app: &App,
    viewer: &Viewer,
    who: &SignedIn,
    status: StatusCode,
    form: &ProfileForm,
    problem: Option<Problem>,
) -> PageResult {
    // Addresses are a buyer's: the library refuses them to anyone else.
    let addresses = match app.market.addresses(&who.principal).await {
        Ok(a) => Some(a),
        Err(e) if e.kind() == ErrorKind::Forbidden => None,
        Err(e) => return Err(e.into()),
    };
    Ok(render_with(
        app,
        viewer,
        status,
        "storefront/account.html",
        context! {
            user => Value::from_serialize(&who.user),
            form => Value::from_serialize(form),
            addresses => addresses.as_ref().map(Value::from_serialize),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `POST /account/profile`.
async fn save_profile(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Form(f): Form<ProfileForm>,
) -> PageResult {
    let update = ProfileUpdate {
        name: Some(blank(&f.name)),
        phone: Some(blank(&f.phone)),
    };
    match app.market.update_profile(&who.principal, update).await {
        Ok(_) => Ok(SeeOther::to("/account")
            .flash("Your profile is saved.")
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            show_account(&app, &viewer, &who, problem.status, &f, Some(problem)).await
        }
    }
}

/// `POST /account/verify-email/resend`.
async fn resend(State(app): State<App>, who: SignedIn) -> PageResult {
    let message = match app.market.resend_verification(&who.principal).await {
        Ok(()) => format!(
            "We sent a new confirmation link to {}. It works once, for a limited time.",
            who.user.email.as_str()
        ),
        Err(e) if e.kind() == ErrorKind::Conflict => {
            "Your email address is already confirmed.".to_owned()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(SeeOther::to("/account").flash(message).into_response())
}

/// The address form, to add one (`id` none) or edit one.
fn show_address(
    app: &App,
    viewer: &Viewer,
    status: StatusCode,
    id: Option<AddressId>,
    form: &AddressFields,
    problem: Option<Problem>,
) -> axum::response::Response {
    render_with(
        app,
        viewer,
        status,
        "storefront/address.html",
        context! {
            id => id.map(|i| i.to_string()),
            form => Value::from_serialize(form),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    )
}

/// `/account/addresses/new`.
async fn new_address(State(app): State<App>, viewer: Viewer, who: SignedIn) -> PageResult {
    // Asked first so that only a buyer sees the form.
    app.market.addresses(&who.principal).await?;
    Ok(show_address(
        &app,
        &viewer,
        StatusCode::OK,
        None,
        &AddressFields::default(),
        None,
    ))
}

/// `POST /account/addresses`.
async fn add_address(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Form(f): Form<AddressFields>,
) -> PageResult {
    match app.market.add_address(&who.principal, f.input()).await {
        Ok(_) => Ok(SeeOther::to("/account")
            .flash("The address is saved.")
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            Ok(show_address(
                &app,
                &viewer,
                problem.status,
                None,
                &f,
                Some(problem),
            ))
        }
    }
}

/// One of the buyer's own addresses; anyone else's is not found.
async fn own(app: &App, who: &SignedIn, id: AddressId) -> Result<Address, crate::page::PageError> {
    app.market
        .addresses(&who.principal)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| marketplace_core::Error::NotFound("address").into())
}

/// `/account/addresses/{id}`.
async fn edit_address(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = path_id(&id, "address")?;
    let address = own(&app, &who, id).await?;
    Ok(show_address(
        &app,
        &viewer,
        StatusCode::OK,
        Some(id),
        &AddressFields::of(&address),
        None,
    ))
}

/// `POST /account/addresses/{id}`.
async fn save_address(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<AddressFields>,
) -> PageResult {
    let id = path_id(&id, "address")?;
    match app
        .market
        .update_address(&who.principal, id, f.input())
        .await
    {
        Ok(_) => Ok(SeeOther::to("/account")
            .flash("The address is saved.")
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            Ok(show_address(
                &app,
                &viewer,
                problem.status,
                Some(id),
                &f,
                Some(problem),
            ))
        }
    }
}

/// `POST /account/addresses/{id}/delete`.
async fn delete_address(
    State(app): State<App>,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = path_id(&id, "address")?;
    app.market.delete_address(&who.principal, id).await?;
    Ok(SeeOther::to("/account")
        .flash("The address is deleted. Orders placed with it keep their copy.")
        .into_response())
}
