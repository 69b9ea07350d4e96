//! Items, their photos and thumbnails, and facets. Photos are read only through the
//! catalog source by the store's keys, so no request can name a path outside the catalog.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookalike_core::catalog::{Field, Product};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::App;

/// Where a client fetches an item's photo.
pub fn image_url(id: &str) -> String {
    format!("/v1/items/{}/image", url_path(id))
}

/// Where a client fetches an item's thumbnail (256 px unless asked otherwise).
pub fn thumbnail_url(id: &str) -> String {
    format!("/v1/items/{}/thumbnail", url_path(id))
}

/// A product id as one URL path segment.
fn url_path(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct ItemOut {
    id: String,
    rel: String,
    image_url: String,
    thumbnail_url: String,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Product>,
}

type ItemPath = Path<String>;

#[utoipa::path(get, path = "/v1/items/{id}", tag = "items", params(("id" = String, Path, description = "Product id or catalog path")),
    responses((status = 200, body = ItemOut), (status = 404, description = "Unknown item", body = ErrorOut),
        (status = 409, description = "Ambiguous item", body = ErrorOut)))]
pub async fn item(State(app): State<Arc<App>>, Path(id): ItemPath) -> ApiResult<Json<ItemOut>> {
    let snapshot = app.service.snapshot();
    let row = snapshot.find_item(&id)?;
    let rel = snapshot.store().entries()[row].path.clone();
    let id = lookalike_core::catalog::product_id(&rel).to_string();
    Ok(Json(ItemOut {
        image_url: image_url(&id),
        thumbnail_url: thumbnail_url(&id),
        id,
        rel,
        metadata: snapshot.product(row).cloned(),
    }))
}

/// An item's catalog path and content hash.
fn entry(app: &App, id: &str) -> ApiResult<(String, String)> {
    let snapshot = app.service.snapshot();
    let e = &snapshot.store().entries()[snapshot.find_item(id)?];
    Ok((e.path.clone(), e.hash.clone()))
}

/// Reads a catalog photo on a blocking thread.
async fn read(app: &App, rel: &str) -> ApiResult<Vec<u8>> {
    let source = app.service.engine().source().clone();
    let key = rel.to_string();
    tokio::task::spawn_blocking(move || source.read(&key))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{rel}: {e}")))
}

#[utoipa::path(get, path = "/v1/items/{id}/image", tag = "items", params(("id" = String, Path, description = "Product id or catalog path")),
    responses((status = 200, description = "The catalog photo as stored", content_type = "image/*", body = Vec<u8>),
        (status = 404, description = "Unknown item", body = ErrorOut), (status = 409, description = "Ambiguous item", body = ErrorOut)))]
pub async fn image(State(app): State<Arc<App>>, Path(id): ItemPath) -> ApiResult<Response> {
    let (rel, _) = entry(&app, &id)?;
    let bytes = read(&app, &rel).await?;
    let ext = rel.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let mime = match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThumbnailParams {
    /// The longest side in pixels, 16 to 1024 (default 256); never larger than the photo.
    #[param(minimum = 16, maximum = 1024)]
    size: Option<u32>,
}

/// Thumbnails by content hash and size: copies of one photo share one entry.
pub type ThumbnailCache = quick_cache::sync::Cache<(String, u32), Bytes, ThumbnailWeight>;

#[derive(Clone)]
pub struct ThumbnailWeight;

impl quick_cache::Weighter<(String, u32), Bytes> for ThumbnailWeight {
    fn weight(&self, _key: &(String, u32), value: &Bytes) -> u64 {
        value.len() as u64 + 64
    }
}

pub fn thumbnail_cache(mib: usize) -> ThumbnailCache {
    let bytes = mib as u64 * 1024 * 1024;
    // quick_cache wants an item estimate: thumbnails are about 10 KiB.
    ThumbnailCache::with_weighter((bytes / 10_240).max(16) as usize, bytes.max(1), ThumbnailWeight)
}

#[utoipa::path(get, path = "/v1/items/{id}/thumbnail", tag = "items",
    params(("id" = String, Path, description = "Product id or catalog path"), ThumbnailParams),
    responses((status = 200, description = "A JPEG thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "Bad size", body = ErrorOut), (status = 404, description = "Unknown item", body = ErrorOut),
        (status = 409, description = "Ambiguous item", body = ErrorOut), (status = 422, description = "The catalog photo does not decode", body = ErrorOut)))]
pub async fn thumbnail(
    State(app): State<Arc<App>>,
    Path(id): ItemPath,
    params: Result<Query<ThumbnailParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let size = params.map_err(|r| ApiError::bad_request(r.body_text()))?.0.size.unwrap_or(256);
    if !(16..=1024).contains(&size) {
        return Err(ApiError::bad_request(format!("size={size}: use 16 to 1024")));
    }
    let (rel, hash) = entry(&app, &id)?;
    let key = (hash, size);
    let jpeg = match app.thumbnails.get(&key) {
        Some(hit) => hit,
        None => {
            let bytes = read(&app, &rel).await?;
            let made = tokio::task::spawn_blocking(move || lookalike_core::model::thumbnail(&bytes, size))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_image", format!("{rel}: {e}")))?;
            let made = Bytes::from(made);
            app.thumbnails.insert(key, made.clone());
            made
        }
    };
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "max-age=3600")], jpeg).into_response())
}

/// The fields worth a facet: categories, not per-product ids and names.
const FACET_FIELDS: &[Field] = &[
    Field::Gender,
    Field::MasterCategory,
    Field::SubCategory,
    Field::ArticleType,
    Field::BaseColour,
    Field::Season,
    Field::Year,
    Field::Usage,
];

#[derive(Serialize, ToSchema)]
pub struct FacetOut {
    /// The styles.csv column, usable in `filter=field:value`.
    field: String,
    /// Its values with their item counts, most frequent first.
    values: Vec<FacetValue>,
}

#[derive(Serialize, ToSchema)]
pub struct FacetValue {
    value: String,
    count: usize,
}

#[utoipa::path(get, path = "/v1/facets", tag = "items", responses((status = 200, body = Vec<FacetOut>)))]
pub async fn facets(State(app): State<Arc<App>>) -> Json<Vec<FacetOut>> {
    let facets = app.service.snapshot().facets(FACET_FIELDS);
    Json(
        facets
            .into_iter()
            .map(|f| FacetOut {
                field: f.field,
                values: f.values.into_iter().map(|(value, count)| FacetValue { value, count }).collect(),
            })
            .collect(),
    )
}

/// Duplicate photos listed under several ids, as `lookalike dupes` reports them.
#[derive(Serialize, ToSchema)]
pub struct DupesOut {
    /// "exact", "near" or "similar".
    tier: &'static str,
    /// "done", or "running" while a near-tier scan of this version is under way (ask
    /// again after the Retry-After seconds).
    status: &'static str,
    /// Each group's members, the copy to keep (the largest file, then the oldest) first:
    /// `{tier, members: [{id, rel, size, keeper, distance, metadata}]}`; empty while
    /// running.
    #[schema(value_type = Vec<Object>)]
    groups: Vec<lookalike_core::dupes::GroupReport>,
}

#[derive(Deserialize, IntoParams)]
pub struct DupesParams {
    /// "exact" (byte-identical, the default), "near" (also the same picture edited:
    /// re-encoded, resized, cropped, mirrored, turned, brightened) or "similar" (photos
    /// whose descriptors are at least `threshold` alike).
    tier: Option<String>,
    /// Similar tier: the least descriptor similarity, -1 to 1 (default 0.9).
    threshold: Option<f32>,
}

/// The near tier of the version being searched: one scan at a time, kept until a
/// reindex replaces the version.
#[derive(Default)]
pub struct NearScans {
    state: std::sync::Mutex<NearScan>,
}

#[derive(Default)]
enum NearScan {
    #[default]
    None,
    Running,
    Done(std::sync::Weak<lookalike_core::Snapshot>, Arc<Vec<lookalike_core::dupes::GroupReport>>),
    Failed(std::sync::Weak<lookalike_core::Snapshot>, String),
}

const NEAR_RETRY_S: u64 = 5;

#[utoipa::path(get, path = "/v1/dupes", tag = "items", params(DupesParams), responses(
    (status = 200, description = "The groups (status done), or a near-tier scan running (status running, Retry-After)", body = DupesOut),
    (status = 400, body = ErrorOut), (status = 500, description = "The near-tier scan failed", body = ErrorOut)))]
pub async fn dupes(State(app): State<Arc<App>>, Query(params): Query<DupesParams>) -> ApiResult<Response> {
    let snapshot = app.service.snapshot();
    match params.tier.as_deref().unwrap_or("exact") {
        "exact" => Ok(Json(DupesOut { tier: "exact", status: "done", groups: snapshot.dupes() }).into_response()),
        "near" => near_dupes(&app, snapshot),
        "similar" => {
            let threshold = params.threshold.unwrap_or(lookalike_core::dupes::SIMILAR_THRESHOLD);
            if !(-1.0..=1.0).contains(&threshold) {
                return Err(ApiError::bad_request(format!("threshold={threshold}: a similarity is between -1 and 1")));
            }
            // From the descriptors alone: seconds for tens of thousands of photos.
            let groups = tokio::task::spawn_blocking(move || snapshot.similar_dupes(threshold))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(Json(DupesOut { tier: "similar", status: "done", groups }).into_response())
        }
        other => Err(ApiError::bad_request(format!("tier={other}: the tiers are exact, near and similar"))),
    }
}

fn near_dupes(app: &Arc<App>, snapshot: Arc<lookalike_core::Snapshot>) -> ApiResult<Response> {
    // A near run (`lookalike dupes --tier near`, or an earlier scan) that looked at this
    // very version at the default threshold answers at once.
    if snapshot.saved_near_run() == Some((lookalike_core::near::THRESHOLD, true)) {
        let groups = snapshot.known_dupes().groups;
        return Ok(Json(DupesOut { tier: "near", status: "done", groups }).into_response());
    }
    let version = Arc::downgrade(&snapshot);
    let mut state = app.near.state.lock().unwrap_or_else(|e| e.into_inner());
    let running = || {
        let out = DupesOut { tier: "near", status: "running", groups: Vec::new() };
        ([(header::RETRY_AFTER, NEAR_RETRY_S.to_string())], Json(out)).into_response()
    };
    match &*state {
        NearScan::Done(v, groups) if v.ptr_eq(&version) => {
            let groups = groups.as_ref().clone();
            return Ok(Json(DupesOut { tier: "near", status: "done", groups }).into_response());
        }
        NearScan::Failed(v, why) if v.ptr_eq(&version) => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "failed", format!("near-tier scan: {why}")))
        }
        // One scan at a time: a scan of an older version finishes first.
        NearScan::Running => return Ok(running()),
        _ => {}
    }
    *state = NearScan::Running;
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let engine = app.service.engine().clone();
        let result = snapshot.near_dupes(&engine, lookalike_core::near::THRESHOLD);
        let mut state = app.near.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = match result {
            Ok((groups, _)) => NearScan::Done(version, Arc::new(groups)),
            Err(e) => NearScan::Failed(version, e.to_string()),
        };
    });
    Ok(running())
}
