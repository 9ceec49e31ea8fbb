//! Firehose errors on the wire: `{"__type": ..., "message": ...}` plus `X-Amzn-ErrorType`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    ResourceNotFound(String),
    InvalidArgument(String),
    /// Constraint violations, in AWS's `1 validation error detected: ...` form.
    Validation(String),
    ServiceUnavailable(String),
    UnknownOperation(String),
    InternalFailure(String),
    /// The body did not arrive in time. Firehose documents no error for this (its front end
    /// answers slow clients itself), so sluice answers 408 with this name.
    RequestTimeout(String),
    ResourceInUse(String),
    LimitExceeded(String),
    ConcurrentModification(String),
    MissingAuthenticationToken(String),
    IncompleteSignature(String),
    InvalidSignature(String),
    UnrecognizedClient(String),
    AccessDenied(String),
}

impl ApiError {
    pub fn name(&self) -> &'static str {
        match self {
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::InvalidArgument(_) => "InvalidArgumentException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailableException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::InternalFailure(_) => "InternalFailure",
            ApiError::RequestTimeout(_) => "RequestTimeoutException",
            ApiError::ResourceInUse(_) => "ResourceInUseException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::ConcurrentModification(_) => "ConcurrentModificationException",
            ApiError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            ApiError::IncompleteSignature(_) => "IncompleteSignatureException",
            ApiError::InvalidSignature(_) => "InvalidSignatureException",
            ApiError::UnrecognizedClient(_) => "UnrecognizedClientException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::ResourceNotFound(m)
            | ApiError::InvalidArgument(m)
            | ApiError::Validation(m)
            | ApiError::ServiceUnavailable(m)
            | ApiError::UnknownOperation(m)
            | ApiError::InternalFailure(m)
            | ApiError::RequestTimeout(m)
            | ApiError::ResourceInUse(m)
            | ApiError::LimitExceeded(m)
            | ApiError::ConcurrentModification(m)
            | ApiError::MissingAuthenticationToken(m)
            | ApiError::IncompleteSignature(m)
            | ApiError::InvalidSignature(m)
            | ApiError::UnrecognizedClient(m)
            | ApiError::AccessDenied(m) => m,
        }
    }

    /// awsJson client faults are 400, the authentication errors included (as AWS's JSON services
    /// answer them); ServiceUnavailable is modeled as 503; InternalFailure is 500.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InternalFailure(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// `1 validation error detected: Value at '<member>' failed to satisfy constraint: <rule>`.
    pub fn constraint(member: &str, rule: &str) -> Self {
        ApiError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: {rule}"
        ))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.name(), "message": self.message() }).to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(super::CONTENT_TYPE));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.name()));
        headers.insert("x-amzn-requestid", super::request_id());
        response
    }
}
