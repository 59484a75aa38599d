//! The seller's products: the list (archived ones too), the product form,
//! image uploads, and archiving with a confirmation step.
//!
//! The form is read as a person types it (a price as `12.50`, dates as the
//! browser's `datetime-local` in UTC) and turned into the library's inputs;
//! what cannot be read is a problem on its field, and everything else
//! (ranges, the category, who may list) is the library's to judge.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, NaiveDateTime, Utc};
use marketplace_core::{
    CatalogQuery, CategoryId, Currency, Discount, DiscountKind, Error, FieldError, Money,
    NewProduct, ProductId, ProductUpdate, ProductView,
};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::money::amount_hint;
use crate::page::{
    Fixable, Form, PageError, PageResult, Problem, Query, SeeOther, form_problem, path_id, render,
    render_with,
};
use crate::session::{SignedIn, Viewer};

/// The product pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/seller/products", get(list).post(create))
        .route("/seller/products/new", get(new_form))
        .route("/seller/products/{id}", get(edit_form).post(update))
        .route(
            "/seller/products/{id}/archive",
            get(archive_confirm).post(archive),
        )
        // An upload is larger than any form: its size is bounded by the
        // library's image limit while it is read, not by the body limit.
        .route(
            "/seller/products/{id}/images",
            axum::routing::post(upload).layer(DefaultBodyLimit::disable()),
        )
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
}

/// `/seller/products`: every product of the store, newest first, archived ones
/// marked.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let cursor = q.cursor.filter(|c| !c.is_empty());
    let query = CatalogQuery {
        cursor: cursor.clone(),
        ..CatalogQuery::default()
    };
    let page = app.market.my_products(&s.principal, query, true).await?;
    let categories: BTreeMap<String, String> = app
        .market
        .categories()
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), c.name))
        .collect();
    Ok(render(
        &app,
        &viewer,
        "seller/products.html",
        context! {
            section => "products",
            products => Value::from_serialize(&page.items),
            categories,
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
            selling => s.user.is_selling(),
        },
    ))
}

/// The product form as the browser sends it, every field as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct ProductForm {
    sku: String,
    title: String,
    description: String,
    price: String,
    stock: String,
    category_id: String,
    /// `none`, `percentage` or `fixed`.
    discount_kind: String,
    /// Percent off, or the amount off as a decimal.
    discount_value: String,
    discount_starts_at: String,
    discount_ends_at: String,
    /// The checkbox: present when ticked.
    active: Option<String>,
}

/// How a `datetime-local` input writes a time (seconds optional).
const WHEN_INPUT: &str = "%Y-%m-%dT%H:%M";

impl ProductForm {
    /// A new product's form: listed, no offer.
    fn blank() -> ProductForm {
        ProductForm {
            discount_kind: "none".to_owned(),
            active: Some("on".to_owned()),
            ..ProductForm::default()
        }
    }

    /// The form showing `p` as it stands.
    fn of(p: &ProductView) -> ProductForm {
        let (kind, value) = match p.discount.as_ref().map(|d| &d.kind) {
            None => ("none", String::new()),
            Some(DiscountKind::Percentage { value }) => ("percentage", value.to_string()),
            Some(DiscountKind::Fixed { amount }) => ("fixed", amount.decimal()),
        };
        let when = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format(WHEN_INPUT).to_string())
                .unwrap_or_default()
        };
        ProductForm {
            sku: p.sku.clone().unwrap_or_default(),
            title: p.title.clone(),
            description: p.description.clone(),
            price: p.price.decimal(),
            stock: p.stock.to_string(),
            category_id: p.category_id.map(|c| c.to_string()).unwrap_or_default(),
            discount_kind: kind.to_owned(),
            discount_value: value,
            discount_starts_at: when(p.discount.as_ref().and_then(|d| d.starts_at)),
            discount_ends_at: when(p.discount.as_ref().and_then(|d| d.ends_at)),
            active: p.active.then(|| "on".to_owned()),
        }
    }

    /// The library's inputs, or a problem on every field that cannot be read.
    fn read(&self, currency: Currency) -> Result<Product, Error> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldError::new(field, "invalid", message));
        };
        let price = Money::from_decimal(self.price.trim(), currency);
        if price.is_none() {
            problem("price", amount_hint(currency));
        }
        let stock = self.stock.trim().parse::<u32>().ok();
        if stock.is_none() {
            problem(
                "stock",
                "write the units in stock as a whole number, like 10".to_owned(),
            );
        }
        let category_id = match self.category_id.trim() {
            "" => Some(None),
            c => c.parse::<CategoryId>().ok().map(Some),
        };
        if category_id.is_none() {
            problem("category_id", "choose a category from the list".to_owned());
        }
        let kind = match self.discount_kind.as_str() {
            "" | "none" => Some(None),
            "percentage" => {
                let value = self.discount_value.trim().parse::<u8>().ok();
                if value.is_none() {
                    problem(
                        "discount_value",
                        "write the percentage off as a whole number from 1 to 100".to_owned(),
                    );
                }
                value.map(|value| Some(DiscountKind::Percentage { value }))
            }
            "fixed" => {
                let amount = Money::from_decimal(self.discount_value.trim(), currency);
                if amount.is_none() {
                    problem("discount_value", amount_hint(currency));
                }
                amount.map(|amount| Some(DiscountKind::Fixed { amount }))
            }
            _ => {
                problem(
                    "discount_kind",
                    "choose no offer, a percentage off or an amount off".to_owned(),
                );
                None
            }
        };
        let mut when = |field: &str, text: &str| match read_when(text) {
            Ok(t) => t,
            Err(()) => {
                problem(
                    field,
                    "write a date and time like 2026-12-24T18:00 (UTC)".to_owned(),
                );
                None
            }
        };
        let starts_at = when("discount_starts_at", &self.discount_starts_at);
        let ends_at = when("discount_ends_at", &self.discount_ends_at);
        let (Some(price), Some(stock), Some(category_id), Some(kind)) =
            (price, stock, category_id, kind)
        else {
            return Err(Error::Validation(problems));
        };
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(Product {
            sku: text(&self.sku),
            title: self.title.clone(),
            description: self.description.clone(),
            price,
            stock,
            category_id,
            discount: kind.map(|kind| Discount {
                kind,
                starts_at,
                ends_at,
            }),
            active: self.active.is_some(),
        })
    }
}

/// A product as the form describes it, in the library's types.
struct Product {
    sku: Option<String>,
    title: String,
    description: String,
    price: Money,
    stock: u32,
    category_id: Option<CategoryId>,
    discount: Option<Discount>,
    active: bool,
}

/// A `datetime-local` value, read as UTC; blank is none.
fn read_when(text: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(text, WHEN_INPUT)
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(t.and_utc()))
        .map_err(|_| ())
}

/// The form's own name for a field the library names (`price.amount` is the
/// `price` input).
fn form_field(field: &str) -> &str {
    match field {
        "price.amount" | "price.currency" => "price",
        "discount.value" | "discount.amount.amount" | "discount.amount.currency" => {
            "discount_value"
        }
        "discount.starts_at" => "discount_starts_at",
        "discount.ends_at" => "discount_ends_at",
        other => other,
    }
}

/// The problem a refused product form is shown again with, its fields named
/// as the form names them.
fn product_problem(e: &Error) -> Result<Problem, PageError> {
    let mut problem = form_problem(e, Fixable::AllButOurs)?;
    for f in &mut problem.fields {
        f.field = form_field(&f.field).to_owned();
    }
    Ok(problem)
}

/// The product page: the form (for `product`, or a new one), its images and
/// upload form, and the problem it came back with.
async fn form_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    product: Option<&ProductView>,
    form: &ProductForm,
    problem: Option<Problem>,
) -> PageResult {
    let categories = app.market.categories().await?;
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "seller/product.html",
        context! {
            section => "products",
            product => product.map(Value::from_serialize),
            form => Value::from_serialize(form),
            categories => Value::from_serialize(&categories),
            currency => app.market.config().currency.as_str(),
            max_image_mb => app.market.config().limits.max_image_bytes / (1024 * 1024),
            selling => s.user.is_selling(),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

async fn new_form(State(app): State<App>, viewer: Viewer, s: SignedIn) -> PageResult {
    form_page(&app, &viewer, &s, None, &ProductForm::blank(), None).await
}

async fn create(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(f): Form<ProductForm>,
) -> PageResult {
    let created = match f.read(app.market.config().currency) {
        Ok(p) => {
            let input = NewProduct {
                sku: p.sku,
                title: p.title,
                description: p.description,
                price: p.price,
                stock: p.stock,
                category_id: p.category_id,
                images: Vec::new(),
                discount: p.discount,
                active: Some(p.active),
            };
            app.market.create_product(&s.principal, input).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(p) => Ok(SeeOther::to(format!("/seller/products/{}", p.id))
            .flash(format!(
                "“{}” is saved. You can add its images now.",
                p.title
            ))
            .into_response()),
        Err(e) => {
            let problem = product_problem(&e)?;
            form_page(&app, &viewer, &s, None, &f, Some(problem)).await
        }
    }
}

async fn edit_form(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let p = app
        .market
        .my_product(&s.principal, path_id(&id, "product")?)
        .await?;
    form_page(&app, &viewer, &s, Some(&p), &ProductForm::of(&p), None).await
}

async fn update(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<ProductForm>,
) -> PageResult {
    let id: ProductId = path_id(&id, "product")?;
    let updated = match f.read(app.market.config().currency) {
        Ok(p) => {
            let update = ProductUpdate {
                sku: Some(p.sku),
                title: Some(p.title),
                description: Some(p.description),
                price: Some(p.price),
                stock: Some(p.stock),
                category_id: Some(p.category_id),
                discount: Some(p.discount),
                active: Some(p.active),
                ..ProductUpdate::default()
            };
            app.market.update_product(&s.principal, id, update).await
        }
        Err(e) => Err(e),
    };
    match updated {
        Ok(p) => Ok(SeeOther::to(format!("/seller/products/{}", p.id))
            .flash(format!("“{}” is saved.", p.title))
            .into_response()),
        Err(e) => {
            let problem = product_problem(&e)?;
            let p = app.market.my_product(&s.principal, id).await?;
            form_page(&app, &viewer, &s, Some(&p), &f, Some(problem)).await
        }
    }
}

/// The step before archiving: what it means, and the button that does it.
async fn archive_confirm(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let p = app
        .market
        .my_product(&s.principal, path_id(&id, "product")?)
        .await?;
    Ok(render(
        &app,
        &viewer,
        "seller/archive.html",
        context! { section => "products", product => Value::from_serialize(&p) },
    ))
}

async fn archive(State(app): State<App>, s: SignedIn, Path(id): Path<String>) -> PageResult {
    let id: ProductId = path_id(&id, "product")?;
    let p = app.market.my_product(&s.principal, id).await?;
    app.market.archive_product(&s.principal, id).await?;
    Ok(SeeOther::to("/seller/products")
        .flash(format!(
            "“{}” is archived: it has left the shop, and past orders keep their copy.",
            p.title
        ))
        .into_response())
}

/// An image upload (the form's file field `image`), read up to the library's
/// image size limit and handed to it whole.
async fn upload(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> PageResult {
    let id: ProductId = path_id(&id, "product")?;
    let uploaded = match read_image(&app, multipart).await {
        Ok(bytes) => app.market.upload_image(&s.principal, id, bytes).await,
        Err(e) => Err(e),
    };
    match uploaded {
        Ok(_) => Ok(SeeOther::to(format!("/seller/products/{id}"))
            .flash("The image is added.")
            .into_response()),
        Err(e) => {
            let problem = product_problem(&e)?;
            let p = app.market.my_product(&s.principal, id).await?;
            form_page(
                &app,
                &viewer,
                &s,
                Some(&p),
                &ProductForm::of(&p),
                Some(problem),
            )
            .await
        }
    }
}

/// The bytes of the form's `image` field: refused past the library's limit
/// while they arrive, and when the form has no file.
async fn read_image(
    app: &App,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<axum::body::Bytes, Error> {
    let limit = app.market.config().limits.max_image_bytes;
    let unreadable = |why: String| {
        Error::invalid(
            "image",
            "unreadable",
            format!("the upload could not be read: {why}"),
        )
    };
    let none = || Error::invalid("image", "required", "choose an image file to upload");
    let mut multipart = multipart.map_err(|e| unreadable(e.body_text()))?;
    // The form has one field: anything else is not this form, and is not read.
    let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| unreadable(e.body_text()))?
    else {
        return Err(none());
    };
    if field.name() != Some("image") {
        return Err(none());
    }
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| unreadable(e.body_text()))? {
        if data.len() + chunk.len() > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        data.extend_from_slice(&chunk);
    }
    if data.is_empty() {
        return Err(none());
    }
    Ok(data.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_typed_and_shown_back_the_same() {
        let usd = Currency::USD;
        let form = ProductForm {
            title: "Lamp".into(),
            price: " 12.50 ".into(),
            stock: "3".into(),
            discount_kind: "fixed".into(),
            discount_value: "2".into(),
            discount_ends_at: "2030-01-01T00:00".into(),
            ..ProductForm::blank()
        };
        let Ok(p) = form.read(usd) else {
            panic!("a readable form was refused");
        };
        assert_eq!(p.price, Money::new(1250, usd));
        assert_eq!(
            p.discount.as_ref().map(|d| &d.kind),
            Some(&DiscountKind::Fixed {
                amount: Money::new(200, usd)
            })
        );
        assert!(p.active);
        assert_eq!(Money::new(1250, usd).decimal(), "12.50");
    }

    #[test]
    fn what_cannot_be_read_is_a_problem_on_its_field() {
        let form = ProductForm {
            price: "12,50".into(),
            stock: "-1".into(),
            discount_kind: "percentage".into(),
            discount_value: "half".into(),
            discount_starts_at: "tomorrow".into(),
            ..ProductForm::blank()
        };
        let Err(e) = form.read(Currency::USD) else {
            panic!("an unreadable form was read");
        };
        let fields: Vec<&str> = e.field_errors().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["price", "stock", "discount_value", "discount_starts_at"]
        );
        assert_eq!(form_field("price.amount"), "price");
        assert_eq!(form_field("title"), "title");
    }
}
