//! `GET /v1/openapi.json`: the API described from the handlers' own types and annotations,
//! so the document cannot drift from the code (schemathesis tests the server against it).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{error, items, jobs, metrics, search};

#[derive(OpenApi)]
#[openapi(
    info(title = "lookalike", description = "Visual similarity search over a fashion product catalog"),
    paths(
        crate::healthz, crate::readyz, metrics::metrics, search::search_handler, search::similar,
        items::item, items::image, items::thumbnail, items::facets, items::dupes, jobs::start, jobs::get
    ),
    components(schemas(error::ErrorOut, error::ErrorBody, search::Photo, search::ImageForm, search::SearchJson)),
    modifiers(&Bearer)
)]
struct Doc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(Doc::openapi())
}
