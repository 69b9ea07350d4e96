//! object_store's errors as lookalike reports them: the operation, the bucket and the key,
//! and a kind that tells an unreachable store (stop the run) from one bad object (skip
//! it). Messages carry no credentials: object_store's errors name the request, never the
//! signature or the keys.

use std::error::Error as _;
use std::io::{self, ErrorKind};

use object_store::client::{HttpError, HttpErrorKind};

/// One failed request: `GET s3://bucket/key: reason`.
pub fn io_error(operation: &str, url: &str, e: &object_store::Error) -> io::Error {
    io::Error::new(kind(e), format!("{operation} {url}: {}", reason(e)))
}

/// What went wrong, in words a user can act on.
pub fn reason(e: &object_store::Error) -> String {
    let text = chain(e);
    let code = error_code(&text).map_or(String::new(), |c| format!(" {c}"));
    match (e, status(&text)) {
        (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => {
            format!("not found (404{code}): check the bucket and the key")
        }
        (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }, _)
        | (_, Some(401 | 403)) => format!(
            "access denied ({}{code}): check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's policy",
            status(&text).unwrap_or(403)
        ),
        (_, Some(s)) if s >= 500 => format!("the server failed ({s}{code}) on every try: {text}"),
        _ => match kind(e) {
            ErrorKind::ConnectionRefused => format!("the endpoint cannot be reached after every retry ({text})"),
            ErrorKind::TimedOut => format!("timed out after every retry ({text})"),
            _ => text,
        },
    }
}

/// The HTTP status in object_store's message: it keeps the status codes themselves private.
fn status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// The S3 error code of the server's XML answer (`SignatureDoesNotMatch`, `NoSuchBucket`).
fn error_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// The error and its causes on one line.
fn chain(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The io kind lookalike's indexer understands: outage kinds stop a run
/// (`lookalike_core::catalog::is_outage`), the rest skip one object.
fn kind(e: &object_store::Error) -> ErrorKind {
    use object_store::Error::*;
    match e {
        NotFound { .. } => return ErrorKind::NotFound,
        PermissionDenied { .. } | Unauthenticated { .. } => return ErrorKind::PermissionDenied,
        _ => {}
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(http) = s.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Connect | HttpErrorKind::Request => ErrorKind::ConnectionRefused,
                HttpErrorKind::Timeout => ErrorKind::TimedOut,
                HttpErrorKind::Interrupted => ErrorKind::ConnectionReset,
                _ => ErrorKind::Other,
            };
        }
        source = s.source();
    }
    match status(&chain(e)) {
        Some(404) => ErrorKind::NotFound,
        Some(401 | 403) => ErrorKind::PermissionDenied,
        // A server error that outlasted the retries (500, 503 SlowDown): an outage.
        Some(s) if s >= 500 => ErrorKind::ConnectionAborted,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_code_come_out_of_the_message() {
        let text = "Error performing GET http://h/p in 1ms - Server returned non-2xx status code: 403 Forbidden: \
                    <Error><Code>SignatureDoesNotMatch</Code><Message>...</Message></Error>";
        assert_eq!(status(text), Some(403));
        assert_eq!(error_code(text), Some("SignatureDoesNotMatch"));
        assert_eq!(status("connection refused"), None);
        assert_eq!(error_code("no xml"), None);
    }
}
