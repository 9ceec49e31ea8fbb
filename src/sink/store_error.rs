//! Object store failures in plain words. object_store's errors are written for its developers
//! (`Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 1.2s, after
//! 3 retries … Server returned non-2xx status code: 403 Forbidden`); an operator needs to know
//! what went wrong and what to check. Each message starts with the cause sluice recognised, then
//! keeps the store's own last words (the S3 error code and message) for a search.

/// The cause an object store error most likely had, in an operator's words.
pub fn plain_words(error: &object_store::Error) -> String {
    let raw = error.to_string();
    let cause = cause(error, &raw);
    let detail = store_words(&raw);
    match (cause, detail) {
        (Some(cause), Some(detail)) => format!("{cause} (the store said: {detail})"),
        (Some(cause), None) => cause,
        (None, _) => raw,
    }
}

fn cause(error: &object_store::Error, raw: &str) -> Option<String> {
    use object_store::Error as E;
    let has = |needle: &str| raw.contains(needle);
    Some(match error {
        E::NotFound { path, .. } => format!("`{path}` does not exist in the store"),
        E::PermissionDenied { path, .. } => {
            format!("access to `{path}` was denied: the credentials lack permission on this bucket or prefix")
        }
        E::Unauthenticated { path, .. } => format!("the store did not accept the credentials for `{path}`"),
        _ if has("169.254.169.254") || has("Error getting credentials") || has("credential") => {
            "no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile, web \
             identity or container credentials); the last place looked, the instance metadata service, did not \
             answer with any"
                .to_string()
        }
        _ if has("InvalidAccessKeyId") => "the store does not know this access key id".to_string(),
        _ if has("SignatureDoesNotMatch") => {
            "the secret access key does not match the access key id (or the region is wrong)".to_string()
        }
        _ if has("NoSuchBucket") => "the bucket does not exist".to_string(),
        _ if has("AccessDenied") || has("403 Forbidden") => {
            "access denied: the credentials lack permission to write to this bucket or prefix".to_string()
        }
        _ if has("incorrectly configured region")
            || has("PermanentRedirect")
            || has("AuthorizationHeaderMalformed") =>
        {
            "the bucket is in another region than the one configured (set `region:` on the destination)".to_string()
        }
        _ if has("SlowDown") || has("503 Service Unavailable") || has("429 Too Many Requests") => {
            "the store is throttling requests; sluice retries with backoff".to_string()
        }
        _ if has("Connection refused") || has("error sending request") || has("dns error") || has("timed out") => {
            "cannot reach the store: check the endpoint, the network and that the server is running".to_string()
        }
        _ if has("500 Internal Server Error") || has("502 Bad Gateway") || has("504 Gateway Timeout") => {
            "the store failed the request (a server error); sluice retries".to_string()
        }
        _ => return None,
    })
}

/// The store's own last words: the S3 `<Code>` and `<Message>` of an error body, or the innermost
/// part of the error chain, without URLs and retry counts.
fn store_words(raw: &str) -> Option<String> {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = raw.find(&open)? + open.len();
        let end = raw[start..].find(&format!("</{name}>"))? + start;
        Some(raw[start..end].trim().to_string())
    };
    if let Some(code) = tag("Code") {
        return Some(match tag("Message") {
            Some(message) => format!("{code}: {message}"),
            None => code,
        });
    }
    let last = raw.rsplit(": ").next()?.trim();
    (!last.is_empty() && !last.contains("http://") && !last.contains("https://")).then(|| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: text.to_string().into() }
    }

    #[test]
    fn missing_credentials_are_named_as_such() {
        let e = generic(
            "Error getting credentials from provider: Error performing PUT http://169.254.169.254/latest/api/token \
             in 1.2s, after 3 retries - Server returned non-2xx status code: 403 Forbidden",
        );
        let words = plain_words(&e);
        assert!(words.starts_with("no AWS credentials were found"), "{words}");
        assert!(!words.contains("169.254"), "{words}");
    }

    #[test]
    fn an_s3_error_body_gives_its_code_and_message() {
        let e = generic(
            "Error performing PUT http://127.0.0.1:9000/b/k in 10ms - Server returned non-2xx status code: \
             403 Forbidden: <Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>",
        );
        assert_eq!(
            plain_words(&e),
            "access denied: the credentials lack permission to write to this bucket or prefix \
             (the store said: AccessDenied: Access Denied.)"
        );
    }

    #[test]
    fn an_unreachable_endpoint_says_so() {
        let e = generic("Error performing PUT http://127.0.0.1:1/b/k - HTTP error: error sending request");
        assert!(plain_words(&e).starts_with("cannot reach the store"), "{}", plain_words(&e));
    }

    #[test]
    fn an_unknown_error_keeps_its_own_words() {
        let e = generic("something new");
        assert_eq!(plain_words(&e), "Generic S3 error: something new");
    }
}
