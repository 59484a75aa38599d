//! The OpenAPI 3 document, generated from the handlers' annotations and the core
//! types' schemas.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{accounts, admin, catalog, ops, orders, shopping};

#[derive(OpenApi)]
#[openapi(
    info(title = "Marketplace API", description = "A multi-vendor marketplace: many sellers, one storefront, one checkout. Errors are `application/problem+json` (RFC 9457) with a stable `code`."),
    paths(
        accounts::register, accounts::login, accounts::refresh, accounts::logout, accounts::verify_email,
        accounts::resend_verification, accounts::password_reset, accounts::password_reset_confirm,
        accounts::me, accounts::update_me, accounts::addresses, accounts::add_address,
        accounts::update_address, accounts::delete_address,
        catalog::browse, catalog::product, catalog::categories, catalog::create_category,
        catalog::rename_category, catalog::delete_category, catalog::my_products, catalog::create_product,
        catalog::my_product, catalog::update_product, catalog::archive_product, catalog::upload_image,
        shopping::cart, shopping::clear_cart, shopping::add_item, shopping::set_quantity, shopping::remove_item,
        shopping::wishlist, shopping::add_wish, shopping::remove_wish, shopping::checkout,
        orders::my_orders, orders::my_order, orders::cancel, orders::request_return,
        orders::seller_orders, orders::seller_order, orders::set_status,
        admin::sellers, admin::verify, admin::reject_seller, admin::deactivate_user, admin::activate_user,
        admin::deactivate_product, admin::activate_product, admin::orders, admin::outbox, admin::retry,
        ops::healthz, ops::readyz, ops::openapi, ops::media,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&CommonResponses),
)]
struct ApiDoc;

/// Adds the bearer scheme and the error responses every operation can give, so
/// each operation lists them without repeating them in every annotation.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let has_param = path.contains('{');
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                // Every error answers `application/problem+json`, including the
                // ones annotated on handlers.
                for (code, response) in responses.iter_mut() {
                    if let (true, RefOr::T(r)) =
                        (code.starts_with('4') || code.starts_with('5'), response)
                        && let Some(content) = r.content.shift_remove("application/json")
                    {
                        r.content
                            .insert("application/problem+json".to_owned(), content);
                    }
                }
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem(description));
                };
                add(
                    "400",
                    "malformed request: bad JSON, wrong types, unknown fields, bad query",
                );
                if has_body {
                    add("413", "request body too large");
                    add("415", "the body is not JSON");
                    add("422", "validation failed; `errors` lists every field");
                }
                if secured {
                    add("401", "missing, expired or invalid access token");
                    add("403", "the caller's role may not do this");
                }
                if has_param || secured {
                    add("404", "no such resource, or not the caller's");
                }
                add("500", "unexpected failure (logged, never detailed)");
                add("503", "storage temporarily unavailable; retry");
            }
        }
    }
}

/// The document (built once).
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}
