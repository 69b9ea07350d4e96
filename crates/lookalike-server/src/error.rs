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
            ErrorKind::NotIndexed | ErrorKind::Outdated | ErrorKind::Locked => {
                (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, e.to_string())
    }
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
