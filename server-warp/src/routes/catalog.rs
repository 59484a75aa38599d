//! Public catalog, categories, and the seller's own products and images.

use bytes::{Buf, Bytes};
use futures::TryStreamExt;
use marketplace_core::{
    CatalogQuery, Category, CategoryId, NewProduct, Page, Principal, ProductId, ProductSort,
    ProductUpdate, ProductView, UserId,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, created, json, no_content, ok, query};
use crate::problem::{ApiError, reject};

/// Catalog search parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filters {
    /// Page size, 1..=100 (default 20; larger asks get 100).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Text to find in title or description (at most 200 characters).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Only this seller's products.
    #[param(value_type = Option<String>, format = Uuid)]
    pub seller_id: Option<UserId>,
    /// Only this category.
    #[param(value_type = Option<String>, format = Uuid)]
    pub category: Option<CategoryId>,
    /// Listed price at least this (minor units).
    #[param(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub min_price: Option<i64>,
    /// Listed price at most this (minor units).
    #[param(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub max_price: Option<i64>,
    /// Only products in stock.
    pub in_stock: Option<bool>,
    /// Order of the results (default `newest`).
    #[param(inline)]
    pub sort: Option<ProductSort>,
    /// Seller listings only: include archived products.
    pub include_archived: Option<bool>,
}

impl Filters {
    fn query(self) -> CatalogQuery {
        CatalogQuery {
            limit: self.limit,
            cursor: self.cursor,
            q: self.q,
            seller_id: self.seller_id,
            category: self.category,
            min_price: self.min_price,
            max_price: self.max_price,
            in_stock: self.in_stock,
            sort: self.sort,
        }
    }
}

/// A category name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    /// The name (1..=80 characters, unique).
    #[schema(min_length = 1, max_length = 80)]
    pub name: String,
}

/// Lists the public catalog: products of verified sellers, filtered, sorted, paged by cursor.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(Filters),
    responses((status = 200, description = "a page of products", body = Page<ProductView>)))]
pub async fn browse(app: App, f: Filters) -> Result<Response, Rejection> {
    Ok(ok(&app.market.browse(f.query()).await.map_err(reject)?))
}

/// One listed product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "product id")),
    responses((status = 200, description = "the product", body = ProductView)))]
pub async fn product(id: ProductId, app: App) -> Result<Response, Rejection> {
    Ok(ok(&app.market.product(id).await.map_err(reject)?))
}

/// Every category.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog",
    responses((status = 200, description = "categories by name", body = Vec<Category>)))]
pub async fn categories(app: App) -> Result<Response, Rejection> {
    Ok(ok(&app.market.categories().await.map_err(reject)?))
}

/// An admin creates a category.
#[utoipa::path(post, path = "/api/v1/admin/categories", tag = "admin", security(("bearer" = [])), request_body = CategoryInput,
    responses((status = 201, description = "the category", body = Category)))]
pub async fn create_category(
    app: App,
    who: Principal,
    body: CategoryInput,
) -> Result<Response, Rejection> {
    Ok(created(
        &app.market
            .create_category(&who, &body.name)
            .await
            .map_err(reject)?,
    ))
}

/// An admin renames a category.
#[utoipa::path(patch, path = "/api/v1/admin/categories/{id}", tag = "admin", security(("bearer" = [])), request_body = CategoryInput,
    params(("id" = String, Path, description = "category id")),
    responses((status = 200, description = "the category", body = Category)))]
pub async fn rename_category(
    id: CategoryId,
    app: App,
    who: Principal,
    body: CategoryInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .rename_category(&who, id, &body.name)
        .await
        .map_err(reject)?))
}

/// An admin deletes a category no product uses.
#[utoipa::path(delete, path = "/api/v1/admin/categories/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "category id")),
    responses((status = 204, description = "deleted"), (status = 409, description = "still in use", body = crate::problem::Problem)))]
pub async fn delete_category(
    id: CategoryId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    app.market.delete_category(&who, id).await.map_err(reject)?;
    Ok(no_content())
}

/// The seller's own products, listed or hidden (archived with `include_archived=true`).
#[utoipa::path(get, path = "/api/v1/seller/products", tag = "seller", security(("bearer" = [])), params(Filters),
    responses((status = 200, description = "a page of products", body = Page<ProductView>)))]
pub async fn my_products(app: App, who: Principal, f: Filters) -> Result<Response, Rejection> {
    let archived = f.include_archived.unwrap_or(false);
    Ok(ok(&app
        .market
        .my_products(&who, f.query(), archived)
        .await
        .map_err(reject)?))
}

/// A verified seller lists a product.
#[utoipa::path(post, path = "/api/v1/seller/products", tag = "seller", security(("bearer" = [])), request_body = NewProduct,
    responses((status = 201, description = "the product", body = ProductView)))]
pub async fn create_product(
    app: App,
    who: Principal,
    body: NewProduct,
) -> Result<Response, Rejection> {
    Ok(created(
        &app.market
            .create_product(&who, body)
            .await
            .map_err(reject)?,
    ))
}

/// One of the seller's own products, whatever its state.
#[utoipa::path(get, path = "/api/v1/seller/products/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = String, Path, description = "product id")),
    responses((status = 200, description = "the product", body = ProductView)))]
pub async fn my_product(id: ProductId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .my_product(&who, id)
        .await
        .map_err(reject)?))
}

/// Changes a product; absent fields stay, `null` clears `discount` or `category_id`.
#[utoipa::path(patch, path = "/api/v1/seller/products/{id}", tag = "seller", security(("bearer" = [])), request_body = ProductUpdate,
    params(("id" = String, Path, description = "product id")),
    responses((status = 200, description = "the product", body = ProductView)))]
pub async fn update_product(
    id: ProductId,
    app: App,
    who: Principal,
    body: ProductUpdate,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .update_product(&who, id, body)
        .await
        .map_err(reject)?))
}

/// Archives a product: it leaves the catalog; past orders keep their snapshots.
#[utoipa::path(delete, path = "/api/v1/seller/products/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = String, Path, description = "product id")),
    responses((status = 204, description = "archived")))]
pub async fn archive_product(
    id: ProductId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    app.market.archive_product(&who, id).await.map_err(reject)?;
    Ok(no_content())
}

/// The form an image upload sends.
#[derive(ToSchema)]
pub struct ImageUpload {
    /// The image file: JPEG, PNG or WebP, recognised from its bytes; at most
    /// 5 MiB and 40 megapixels by default.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    pub image: Vec<u8>,
}

/// Uploads a product image (multipart field `image`; JPEG, PNG or WebP, checked from the bytes).
#[utoipa::path(post, path = "/api/v1/seller/products/{id}/images", tag = "seller", security(("bearer" = [])),
    params(("id" = String, Path, description = "product id")),
    request_body(content = ImageUpload, content_type = "multipart/form-data", description = "a form with one file field `image`"),
    responses((status = 201, description = "the product with the new image URL", body = ProductView),
              (status = 413, description = "image too large", body = crate::problem::Problem),
              (status = 415, description = "not a JPEG, PNG or WebP image", body = crate::problem::Problem),
              (status = 422, description = "unreadable, truncated, or over the pixel budget", body = crate::problem::Problem)))]
pub async fn upload_image(
    id: ProductId,
    app: App,
    who: Principal,
    form: warp::multipart::FormData,
) -> Result<Response, Rejection> {
    let limit = app.market.config().limits.max_image_bytes;
    let mut parts = form;
    let mut image: Option<Bytes> = None;
    while let Some(part) = parts.try_next().await.map_err(|e| {
        warp::reject::custom(ApiError::bad_request("invalid_multipart", e.to_string()))
    })? {
        if part.name() != "image" {
            continue;
        }
        let mut data = Vec::new();
        let mut stream = part.stream();
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            warp::reject::custom(ApiError::bad_request("invalid_multipart", e.to_string()))
        })? {
            data.extend_from_slice(chunk.chunk());
            if data.len() > limit {
                return Err(reject(marketplace_core::Error::PayloadTooLarge { limit }));
            }
        }
        image = Some(Bytes::from(data));
        break;
    }
    let image = image.ok_or_else(|| {
        warp::reject::custom(ApiError::bad_field(
            "missing_image",
            "image",
            "send the file in a form field named `image`",
        ))
    })?;
    Ok(created(
        &app.market
            .upload_image(&who, id, image)
            .await
            .map_err(reject)?,
    ))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let image_limit = a.market.config().limits.max_image_bytes as u64 + 64 * 1024;
    let with = || crate::extract::app(a.clone());
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let filters = || query::<Filters>();
    let r1 = warp::path!("products")
        .and(warp::get())
        .and(with())
        .and(filters())
        .and_then(browse);
    let r2 = warp::path!("products" / ProductId)
        .and(warp::get())
        .and(with())
        .and_then(product);
    let r3 = warp::path!("categories")
        .and(warp::get())
        .and(with())
        .and_then(categories);
    let r4 = warp::path!("admin" / "categories")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(create_category);
    let r5 = warp::path!("admin" / "categories" / CategoryId)
        .and(warp::patch())
        .and(authed())
        .and(json(limit))
        .and_then(rename_category);
    let r6 = warp::path!("admin" / "categories" / CategoryId)
        .and(warp::delete())
        .and(authed())
        .and_then(delete_category);
    let r7 = warp::path!("seller" / "products")
        .and(warp::get())
        .and(authed())
        .and(filters())
        .and_then(my_products);
    let r8 = warp::path!("seller" / "products")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(create_product);
    let r9 = warp::path!("seller" / "products" / ProductId)
        .and(warp::get())
        .and(authed())
        .and_then(my_product);
    let r10 = warp::path!("seller" / "products" / ProductId)
        .and(warp::patch())
        .and(authed())
        .and(json(limit))
        .and_then(update_product);
    let r11 = warp::path!("seller" / "products" / ProductId)
        .and(warp::delete())
        .and(authed())
        .and_then(archive_product);
    let r12 = warp::path!("seller" / "products" / ProductId / "images")
        .and(warp::post())
        .and(authed())
        .and(warp::multipart::form().max_length(image_limit))
        .and_then(upload_image);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12)
}
