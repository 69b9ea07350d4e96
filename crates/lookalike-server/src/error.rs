//! Every error a client sees: JSON `{"error": {"kind", "message"}}` with its status; 503s
//! carry Retry-After, 401s WWW-Authenticate.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookalike_core::ErrorKind;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorOut {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable name: bad_request, bad_image, unknown_item, too_large, busy, ...
    pub kind: String,
    /// What went wrong, for people.
    pub message: String,
}

pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }
}

impl From<lookalike_core::Error> for ApiError {
    fn from(e: lookalike_core::Error) -> ApiError {
        let (status, kind) = match e.kind() {
            ErrorKind::UnknownItem => (StatusCode::NOT_FOUND, "unknown_item"),
            ErrorKind::AmbiguousItem => (StatusCode::CONFLICT, "ambiguous_item"),
            ErrorKind::BadImage => (StatusCode::UNPROCESSABLE_ENTITY, "bad_image"),
            ErrorKind::BadCrop => (StatusCode::BAD_REQUEST, "bad_crop"),
            ErrorKind::NotIndexed | ErrorKind::Outdated | ErrorKind::Locked => {
                (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            }
            // The database is down or refused: another node (or a retry) may answer.
            ErrorKind::Backend => (StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

/// The answer when a handler panicked: a JSON 500 (the panic's text stays in the log).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    eprintln!("lookalike serve: a handler panicked: {}", what.as_deref().unwrap_or("(no message)"));
    ApiError::internal("the server failed on this request; it keeps serving").into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorOut { error: ErrorBody { kind: self.kind.to_string(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let router = axum::Router::new()
            .route("/boom", get(|| async { panic!("boom") as &str }))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked));
        let request = axum::http::Request::get("/boom").body(axum::body::Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["kind"], "internal");
    }
}
