//! The OpenAPI 3 document, generated from the handlers' annotations and the core
//! types' schemas.

use std::sync::OnceLock;

use std::collections::BTreeMap;

use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    accounts, admin, catalog, commission, ledger, ops, orders, payments, payouts, shopping,
};

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
        commission::rules, commission::set_default, commission::remove_default, commission::set_category,
        commission::remove_category, commission::set_seller, commission::remove_seller,
        ledger::balance, ledger::ledger, ledger::statement, ledger::statement_csv, ledger::balances,
        ledger::commission_report,
        payouts::seller_payouts, payouts::seller_payout, payouts::payouts, payouts::payout,
        payouts::run_payouts, payouts::mark_paid, payouts::mark_failed,
        payments::checkout_payment, payments::webhook, payments::payments, payments::payment,
        payments::mark_paid,
        ops::healthz, ops::readyz, ops::openapi, ops::media,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&FlattenedObjects, &CommonResponses),
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
                add(
                    "503",
                    "storage temporarily unavailable (`unavailable`), or the request ran past \
                     MARKETPLACE_REQUEST_TIMEOUT (`deadline_exceeded`); retry after `Retry-After`",
                );
            }
        }
    }
}

/// Serde's `flatten` makes utoipa describe a struct as the `allOf` of the
/// flattened type and the struct's other fields. When the flattened type refuses
/// unknown fields (`additionalProperties: false`, as `CommissionTerms` does for
/// its request body), no value can match both halves, so a response would break
/// its own schema; generators also make poor types of such an `allOf`. Each one
/// is rewritten here as the one object it is sent as.
struct FlattenedObjects;

impl Modify for FlattenedObjects {
    fn modify(&self, doc: &mut Document) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let named = components.schemas.clone();
        for schema in components.schemas.values_mut() {
            merge_all_of(schema, &named);
        }
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = response {
                        for content in r.content.values_mut() {
                            if let Some(schema) = content.schema.as_mut() {
                                merge_all_of(schema, &named);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Rewrites every `allOf` of objects in `schema` (at any depth) as one object
/// with the properties and required fields of all of them; `named` resolves
/// references to component schemas.
fn merge_all_of(schema: &mut RefOr<Schema>, named: &BTreeMap<String, RefOr<Schema>>) {
    let RefOr::T(s) = schema else { return };
    match s {
        Schema::Object(o) => {
            for p in o.properties.values_mut() {
                merge_all_of(p, named);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                merge_all_of(items, named);
            }
        }
        Schema::OneOf(one) => {
            for i in &mut one.items {
                merge_all_of(i, named);
            }
        }
        Schema::AllOf(all) => {
            let mut parts = Vec::new();
            for item in &all.items {
                let resolved = match item {
                    RefOr::Ref(r) => r
                        .ref_location
                        .strip_prefix("#/components/schemas/")
                        .and_then(|name| named.get(name)),
                    t => Some(t),
                };
                match resolved {
                    Some(RefOr::T(Schema::Object(o))) => parts.push(o.clone()),
                    // Not a plain object (a oneOf, say): left as utoipa wrote it.
                    _ => return,
                }
            }
            let mut merged = ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(all.description.clone())
                .build();
            for part in parts {
                for (name, mut p) in part.properties {
                    merge_all_of(&mut p, named);
                    merged.properties.insert(name, p);
                }
                for r in part.required {
                    if !merged.required.contains(&r) {
                        merged.required.push(r);
                    }
                }
            }
            *s = Schema::Object(merged);
        }
        _ => {}
    }
}

/// The document (built once).
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_money_route_is_documented_and_secured() {
        let doc = serde_json::to_value(document()).unwrap_or_default();
        let money = [
            ("get", "/api/v1/admin/commission-rules"),
            ("put", "/api/v1/admin/commission-rules/default"),
            ("delete", "/api/v1/admin/commission-rules/default"),
            ("put", "/api/v1/admin/commission-rules/categories/{id}"),
            ("delete", "/api/v1/admin/commission-rules/categories/{id}"),
            ("put", "/api/v1/admin/commission-rules/sellers/{id}"),
            ("delete", "/api/v1/admin/commission-rules/sellers/{id}"),
            ("get", "/api/v1/seller/balance"),
            ("get", "/api/v1/seller/ledger"),
            ("get", "/api/v1/seller/payouts"),
            ("get", "/api/v1/seller/payouts/{id}"),
            ("get", "/api/v1/seller/statement"),
            ("get", "/api/v1/seller/statement.csv"),
            ("get", "/api/v1/admin/balances"),
            ("get", "/api/v1/admin/payouts"),
            ("post", "/api/v1/admin/payouts"),
            ("get", "/api/v1/admin/payouts/{id}"),
            ("post", "/api/v1/admin/payouts/{id}/paid"),
            ("post", "/api/v1/admin/payouts/{id}/failed"),
            ("get", "/api/v1/admin/reports/commission"),
            ("get", "/api/v1/checkouts/{id}/payment"),
            ("get", "/api/v1/admin/payments"),
            ("get", "/api/v1/admin/payments/{id}"),
            ("post", "/api/v1/admin/payments/{id}/paid"),
        ];
        for (method, path) in money {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert_eq!(
                op["security"],
                serde_json::json!([{"bearer": []}]),
                "{method} {path}"
            );
            assert!(op["responses"]["403"].is_object(), "{method} {path}");
        }
        let csv = &doc["paths"]["/api/v1/seller/statement.csv"]["get"]["responses"]["200"];
        assert!(csv["content"]["text/csv"].is_object(), "{csv}");
        assert!(csv["headers"]["content-disposition"].is_object(), "{csv}");
    }

    #[test]
    fn flattened_structs_are_plain_objects() {
        let doc = serde_json::to_value(document()).unwrap_or_default();
        assert!(
            !doc.to_string().contains("allOf"),
            "an allOf is left in the document"
        );
        let rule = &doc["components"]["schemas"]["CommissionRule"];
        assert_eq!(rule["type"], "object");
        for field in ["scope", "rate_bps", "fixed_fee", "updated_at"] {
            assert!(rule["properties"][field].is_object(), "{field}: {rule}");
        }
        // The request body keeps refusing unknown fields.
        assert_eq!(
            doc["components"]["schemas"]["CommissionTerms"]["additionalProperties"],
            false
        );
    }
}
