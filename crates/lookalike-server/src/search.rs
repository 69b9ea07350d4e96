//! `POST /v1/search` and `GET /v1/items/{id}/similar`. Photos (raw body, multipart field
//! `image`, or a URL when allowed) go through the batch worker, so concurrent uploads
//! share model calls; ranking runs on blocking threads, at most `max_concurrent` at once;
//! everything waits within one bounded queue and one timeout.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use lookalike_core::batcher::Reply;
use lookalike_core::catalog::{Field, Filter, Grouping, Product};
use lookalike_core::{strength, Crop, Hit, Query, Steering};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorOut};
use crate::items::{image_url, thumbnail_url};
use crate::App;

/// The query string of a search; `filter` may repeat (all must hold).
#[derive(Deserialize, IntoParams)]
#[allow(dead_code)] // Documents the parameters; they are parsed by `params` (repeats allowed).
pub struct SearchParams {
    /// Results to return, 1 to 1000 (default `k` in config).
    #[param(minimum = 1, maximum = 1000)]
    k: Option<usize>,
    /// Results to skip first, at most 10000 (paging).
    #[param(minimum = 0, maximum = 10000)]
    offset: Option<usize>,
    /// `field:value`, e.g. `articleType:Tshirts`; repeat for several.
    filter: Option<Vec<String>>,
    /// Search with a region of the photo (or of the item's photo): `x,y,w,h` as fractions
    /// of its width and height (all at most 1) or in pixels.
    crop: Option<String>,
    /// A catalog item to move the search towards (relevance feedback); repeat for several.
    like: Option<Vec<String>>,
    /// A catalog item to move the search away from; repeat for several.
    unlike: Option<Vec<String>>,
    /// At most `per_group` hits for each value of this metadata field (e.g. `productDisplayName`).
    group_by: Option<String>,
    /// Hits per value of the `group_by` field (default 1).
    #[param(minimum = 1)]
    per_group: Option<usize>,
    /// `same` (default): prefer the query's colours; `any`: this shape in any colour.
    #[param(inline)]
    colour: Option<ColourParam>,
}

/// The `colour` parameter as the OpenAPI document shows it (parsed by `params`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ColourParam {
    Same,
    Any,
}

/// `k`, `offset`, repeated `filter=field:value`, `crop`, `colour`, and repeated `like`
/// and `unlike` of a search URL.
pub struct Params {
    k: usize,
    offset: usize,
    filters: Vec<Filter>,
    steering: Steering,
    grouping: Option<Grouping>,
}

fn params(query: Option<String>, default_k: usize) -> ApiResult<Params> {
    let bad = ApiError::bad_request;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| bad(format!("query string: {e}")))?;
    let mut p = Params { k: default_k, offset: 0, filters: Vec::new(), steering: Steering::default(), grouping: None };
    let (mut group_by, mut per_group) = (None, 1);
    for (key, value) in pairs {
        let number = |v: &str| v.parse::<usize>().map_err(|_| bad(format!("{key}={v:?} is not a whole number")));
        match key.as_str() {
            "k" => p.k = number(&value)?,
            "offset" => p.offset = number(&value)?,
            "filter" => {
                let (field, v) =
                    value.split_once(':').ok_or_else(|| bad(format!("filter {value:?} is not field:value")))?;
                let field = Field::from_column(field.trim())
                    .ok_or_else(|| bad(format!("unknown filter field {field:?}: use one of {}", Field::columns())))?;
                p.filters.push(Filter { field, value: v.trim().to_string() });
            }
            "crop" => p.steering.crop = Some(value.parse().map_err(|e: lookalike_core::Error| bad(e.to_string()))?),
            "colour" => p.steering.colour = value.parse().map_err(|e: lookalike_core::Error| bad(e.to_string()))?,
            "group_by" => group_by = Some(value),
            "per_group" => per_group = number(&value)?,
            "like" => p.steering.feedback.like.push(value),
            "unlike" => p.steering.feedback.unlike.push(value),
            other => {
                return Err(bad(format!(
                "unknown parameter {other:?}: use k, offset, filter, crop, colour, like, unlike, group_by, per_group"
            )))
            }
        }
    }
    p.grouping = group_by.map(|field| Grouping::new(&field, per_group)).transpose().map_err(bad)?;
    if p.k == 0 || p.k > 1000 || p.offset > 10_000 {
        return Err(ApiError::bad_request("k must be 1 to 1000 and offset at most 10000"));
    }
    Ok(p)
}

/// A hit as clients see it: no server paths, URLs for the photo and its thumbnail.
#[derive(Serialize, ToSchema)]
pub struct HitOut {
    rank: usize,
    /// The product id (the file name without extension).
    id: String,
    /// The item's path inside the catalog.
    rel: String,
    /// Cosine similarity to the query as sent, 1 for the same image.
    score: f32,
    /// The similarity the ranking used (to the query after expansion and feedback); hits
    /// come in its order.
    rank_score: f32,
    /// The item's styles.csv row, when it has one.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Product>,
    /// Ids of the catalog's copies of this photo (byte-identical, and edited ones a near run
    /// saved), collapsed into this hit.
    copies: Vec<String>,
    image_url: String,
    thumbnail_url: String,
}

impl From<Hit> for HitOut {
    fn from(h: Hit) -> HitOut {
        HitOut {
            image_url: image_url(&h.id),
            thumbnail_url: thumbnail_url(&h.id),
            rank: h.rank,
            id: h.id,
            rel: h.rel,
            score: h.score,
            rank_score: h.rank_score,
            metadata: h.metadata,
            copies: h.copies,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchOut {
    hits: Vec<HitOut>,
    /// Strong matches: the hits (from rank 1) before the sharpest drop in the ranking's
    /// scores, when one stands out; null when the scores fall evenly.
    strong: Option<usize>,
    /// Time from the request's arrival to the answer, in ms.
    took_ms: f64,
    /// Of which waiting for and embedding the photo (0 for item queries), in ms.
    embed_ms: f64,
    /// Items searched.
    items: usize,
}

/// A JSON search: one of `item` or `url`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchJson {
    /// A catalog item's product id or path: more like it.
    item: Option<String>,
    /// A photo on the web, fetched by the server (only with `[server] allow_url_fetch`).
    url: Option<String>,
}

/// A multipart upload.
#[derive(ToSchema)]
#[allow(dead_code)] // The schema of the form; the body is read by `Multipart`.
pub struct ImageForm {
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

/// A photo's bytes, as the body of a search.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // The schema of a raw upload; the body is read as bytes.
pub struct Photo(Vec<u8>);

/// A search's place in the bounded queue, given back when it ends.
struct Admission<'a>(&'a App);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs a search within the bounded queue and the timeout.
async fn run(app: &Arc<App>, query: Query, p: Params) -> ApiResult<Json<SearchOut>> {
    let started = Instant::now();
    if app.admitted.fetch_add(1, Ordering::SeqCst) >= app.max_admitted {
        app.admitted.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::busy("too many searches waiting; retry shortly"));
    }
    let _admission = Admission(app);
    match tokio::time::timeout(app.timeout, search(app, query, p, started)).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the search took too long")),
    }
}

async fn search(app: &Arc<App>, query: Query, p: Params, started: Instant) -> ApiResult<Json<SearchOut>> {
    let Params { k, offset, filters, steering, grouping } = p;
    // Shared with the decoding thread, so an upload's bytes are not copied.
    let query = Arc::new(query);
    // An item is searched with its stored vector, unless only a region of it is wanted.
    let features = match (query.as_ref(), steering.crop) {
        (Query::Item(_), None) => None,
        (_, crop) => Some(embed(app, query.clone(), crop).await?),
    };
    let embed_ms = if features.is_some() { started.elapsed().as_secs_f64() * 1000.0 } else { 0.0 };
    let _permit = app.permits.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let service = app.service.clone();
    let ranked = tokio::task::spawn_blocking(move || -> lookalike_core::Result<_> {
        let qv = match features {
            Some(features) => service.image_vector(&query, &steering, features)?,
            None => service.query_vector(&query, &steering)?,
        };
        Ok((service.search_grouped(&qv, k + offset, &filters, grouping)?, qv.snapshot().len()))
    });
    let (hits, items) = ranked.await.map_err(|e| ApiError::internal(format!("search failed: {e}")))??;
    let strong = strength::strong_hits(&hits);
    let hits = hits.into_iter().skip(offset).map(HitOut::from).collect();
    Ok(Json(SearchOut { hits, strong, took_ms: started.elapsed().as_secs_f64() * 1000.0, embed_ms, items }))
}

/// A handler waiting for its photo's features; once the client has hung up (the handler
/// dropped), the batch worker skips the photo instead of embedding it for no one.
struct Waiting(tokio::sync::oneshot::Sender<lookalike_core::Result<Vec<f32>>>);

impl Reply for Waiting {
    fn send(self: Box<Self>, features: lookalike_core::Result<Vec<f32>>) {
        let _ = self.0.send(features);
    }

    fn wanted(&self) -> bool {
        !self.0.is_closed()
    }
}

/// A photo's features: decoded here, on a blocking thread, then embedded by the batch
/// worker together with other requests' photos.
async fn embed(app: &Arc<App>, photo: Arc<Query>, crop: Option<Crop>) -> ApiResult<Vec<f32>> {
    let service = app.service.clone();
    let input = tokio::task::spawn_blocking(move || service.prepare(&photo, crop.as_ref()))
        .await
        .map_err(|e| ApiError::internal(format!("decoding failed: {e}")))?
        .ok_or_else(|| ApiError::internal("a photo query without a photo"))??;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.batcher
        .submit(input, Box::new(Waiting(tx)))
        .map_err(|_| ApiError::busy("the photo queue is full; retry shortly"))?;
    Ok(rx.await.map_err(|_| ApiError::internal("the batch worker stopped"))??)
}

fn upload(bytes: Bytes) -> ApiResult<Query> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty body: send the image's bytes"));
    }
    Ok(Query::Bytes { name: "the uploaded image".into(), bytes: bytes.to_vec() })
}

/// A rejected body: over the limit is 413, as JSON like every other error.
fn body_error(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(text),
        _ => ApiError::new(status, "bad_request", text),
    }
}

/// The query a search request's body asks for, by its Content-Type.
async fn read_query(app: &Arc<App>, request: Request) -> ApiResult<Query> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut form =
            Multipart::from_request(request, &()).await.map_err(|r| body_error(r.status(), r.body_text()))?;
        while let Some(field) = form.next_field().await.map_err(|e| body_error(e.status(), e.body_text()))? {
            if field.name() == Some("image") {
                return upload(field.bytes().await.map_err(|e| body_error(e.status(), e.body_text()))?);
            }
        }
        return Err(ApiError::bad_request("multipart form without an `image` field"));
    }
    let body = Bytes::from_request(request, &()).await.map_err(|r| body_error(r.status(), r.body_text()))?;
    if content_type.starts_with("application/json") {
        let json: SearchJson =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?;
        match (json.item, json.url) {
            (Some(item), None) => Ok(Query::Item(item)),
            (None, Some(url)) => fetch(app, url).await,
            _ => Err(ApiError::bad_request("JSON body: send exactly one of \"item\" and \"url\"")),
        }
    } else if content_type.starts_with("image/") || content_type.starts_with("application/octet-stream") {
        upload(body)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {content_type:?}: send image/* bytes, a multipart field `image`, or application/json {{\"item\": ID}}"
            ),
        ))
    }
}

/// A URL query's photo, fetched with a size cap and a timeout; errors never echo the URL
/// (it may carry credentials).
async fn fetch(app: &Arc<App>, url: String) -> ApiResult<Query> {
    if !app.config.allow_url_fetch {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "url_fetch_disabled",
            "URL queries are off on this server ([server] allow_url_fetch = true turns them on)",
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::bad_request("url: only http:// and https:// URLs"));
    }
    let max = app.config.url_max_kib * 1024;
    let timeout = Duration::from_secs(app.config.url_timeout_s);
    let failed =
        |m: String| ApiError::new(StatusCode::BAD_GATEWAY, "url_fetch_failed", format!("fetching the URL: {m}"));
    let fetched = tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(5).build();
        let response = agent.get(&url).call().map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("the server answered HTTP {code}"),
            ureq::Error::Transport(t) => {
                format!("{}{}", t.kind(), t.message().map(|m| format!(": {m}")).unwrap_or_default())
            }
        })?;
        let mut bytes = Vec::new();
        response.into_reader().take(max as u64 + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok::<_, String>(bytes)
    });
    let bytes = fetched.await.map_err(|e| ApiError::internal(e.to_string()))?.map_err(failed)?;
    if bytes.len() > max {
        return Err(ApiError::too_large(format!("the photo at the URL is over {} KiB", app.config.url_max_kib)));
    }
    Ok(Query::Bytes { name: "the photo at the URL".into(), bytes })
}

/// Search by photo (raw body or multipart field `image`), by catalog item, or by URL.
#[utoipa::path(post, path = "/v1/search", tag = "search", params(SearchParams),
    request_body(description = "The photo's bytes, a multipart form with field `image`, or JSON with `item` or `url`",
        content((Photo = "image/jpeg"), (Photo = "image/png"), (Photo = "application/octet-stream"),
                (ImageForm = "multipart/form-data"), (SearchJson = "application/json"))),
    responses(
        (status = 200, description = "The best matches", body = SearchOut),
        (status = 400, description = "Malformed parameters or body", body = ErrorOut),
        (status = 403, description = "URL queries are off", body = ErrorOut),
        (status = 404, description = "Unknown item", body = ErrorOut),
        (status = 408, description = "The body did not arrive within the timeout", body = ErrorOut),
        (status = 409, description = "Ambiguous item", body = ErrorOut),
        (status = 413, description = "Body or fetched photo over the limit", body = ErrorOut),
        (status = 415, description = "Unsupported Content-Type", body = ErrorOut),
        (status = 422, description = "Not a decodable image", body = ErrorOut),
        (status = 502, description = "The URL could not be fetched", body = ErrorOut),
        (status = 503, description = "Busy or timed out; retry after the Retry-After seconds", body = ErrorOut)))]
pub async fn search_handler(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    request: Request,
) -> ApiResult<Json<SearchOut>> {
    let p = params(q, app.service.engine().config().k)?;
    // A declared length over the limit is refused before any of the body is read.
    let limit = app.config.max_body_kib * 1024;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(format!("the body is over the {} KiB limit", app.config.max_body_kib)));
    }
    // A client that stops sending its body does not hold its place for ever.
    let query = tokio::time::timeout(app.timeout, read_query(&app, request)).await.map_err(|_| {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body did not arrive in time")
    })??;
    run(&app, query, p).await
}

/// More like a catalog item (the item itself left out).
#[utoipa::path(get, path = "/v1/items/{id}/similar", tag = "search", params(("id" = String, Path, description = "Product id or catalog path"), SearchParams),
    responses(
        (status = 200, description = "The best matches", body = SearchOut),
        (status = 400, description = "Malformed parameters", body = ErrorOut),
        (status = 404, description = "Unknown item", body = ErrorOut),
        (status = 409, description = "Ambiguous item", body = ErrorOut),
        (status = 503, description = "Busy or timed out", body = ErrorOut)))]
pub async fn similar(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<SearchOut>> {
    let p = params(q, app.service.engine().config().k)?;
    run(&app, Query::Item(id), p).await
}
