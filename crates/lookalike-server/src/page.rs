//! `GET /`: one self-contained page (no build step, no external scripts or fonts, so it
//! works offline): pick or drop a photo, see the results, narrow by facets, click a result
//! for more like it.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("page.html");

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Only this page's own inline code and the server's own images.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
}
