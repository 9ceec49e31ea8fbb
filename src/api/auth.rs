//! SigV4 verification of API requests (`api.auth.access_keys`).
//!
//! Every SDK signs its requests already; verifying means recomputing the signature with the key's
//! secret and comparing. The recomputation is AWS's own signer (aws-sigv4) given exactly the
//! headers the client says it signed, the body and the client's timestamp; the comparison is in
//! constant time (`subtle`). Both forms are accepted: the `Authorization` header and the presigned
//! query string (`X-Amz-Signature`). Errors carry AWS's names, and never a secret or a signature.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq;

use super::ApiError;
use crate::config::security::AccessKey;

/// Requests signed further than this from our clock are refused (AWS allows 5 minutes).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
const SERVICE: &str = "firehose";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a signature claims: who, when, where and over which headers.
struct Claim<'a> {
    access_key_id: &'a str,
    date: &'a str,
    scope_date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
    /// Presigned: how long the signature is valid, and the query without the auth parameters.
    presigned: Option<(Duration, String)>,
}

/// The key that signed the request, once its signature is verified.
pub fn authenticate<'k>(
    keys: &'k [AccessKey],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<&'k AccessKey, ApiError> {
    let query_params: Vec<(String, String)> =
        uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let header_auth = headers.get("authorization").map(|v| v.to_str().unwrap_or(""));
    let claim = match header_auth {
        Some(value) => header_claim(value, headers)?,
        None if query_params.iter().any(|(k, _)| k == "X-Amz-Signature") => query_claim(&query_params, uri)?,
        None => {
            return Err(ApiError::MissingAuthenticationToken(
                "Missing Authentication Token: sign the request with SigV4 (every AWS SDK and the CLI do)".into(),
            ))
        }
    };
    if claim.service != SERVICE {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    let signed_at = parse_amz_date(claim.date).ok_or_else(|| {
        ApiError::IncompleteSignature(format!("X-Amz-Date `{}` is not a date such as 20261202T114500Z", claim.date))
    })?;
    if !claim.date.starts_with(claim.scope_date) {
        return Err(ApiError::InvalidSignature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP".into(),
        ));
    }
    check_clock(signed_at, claim.presigned.as_ref().map(|(e, _)| *e), now, claim.date)?;
    let Some(key) = keys.iter().find(|k| k.id.as_bytes().ct_eq(claim.access_key_id.as_bytes()).into()) else {
        return Err(ApiError::UnrecognizedClient("The security token included in the request is invalid.".into()));
    };
    let mut signed: Vec<(&str, String)> = Vec::with_capacity(claim.signed_headers.len());
    for name in &claim.signed_headers {
        if name.eq_ignore_ascii_case("x-amz-date") && claim.presigned.is_none() {
            continue; // the signer adds it from `signed_at`
        }
        let values: Vec<&str> = headers.get_all(*name).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            return Err(ApiError::IncompleteSignature(format!("the signed header `{name}` is not in the request")));
        }
        signed.push((name, values.join(",")));
    }
    let bodies: &[SignableBody<'_>] = match claim.presigned {
        // Presigned requests usually carry UNSIGNED-PAYLOAD; some signers hash the body anyway.
        Some(_) => &[SignableBody::UnsignedPayload, SignableBody::Bytes(body)],
        None => &[SignableBody::Bytes(body)],
    };
    for body in bodies {
        let expected = expected_signature(key, &claim, method, uri, &signed, body.clone(), signed_at)?;
        if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
            return Ok(key);
        }
    }
    Err(ApiError::InvalidSignature(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
    ))
}

fn expected_signature(
    key: &AccessKey,
    claim: &Claim<'_>,
    method: &Method,
    uri: &Uri,
    signed: &[(&str, String)],
    body: SignableBody<'_>,
    signed_at: SystemTime,
) -> Result<String, ApiError> {
    let internal =
        |e: &dyn std::fmt::Display| ApiError::IncompleteSignature(format!("the request cannot be verified: {e}"));
    let identity = Credentials::new(&key.id, key.secret.expose(), None, None, "sluice-config").into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    let path_and_query = match &claim.presigned {
        Some((expires, rest)) => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(*expires);
            if rest.is_empty() {
                uri.path().to_string()
            } else {
                format!("{}?{rest}", uri.path())
            }
        }
        None => uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string()),
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(claim.region)
        .name(SERVICE)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|e| internal(&e))?
        .into();
    // The authority is a placeholder: the signed Host header, passed below, is what is signed.
    let url = format!("http://sluice{path_and_query}");
    let request = SignableRequest::new(method.as_str(), url, signed.iter().map(|(k, v)| (*k, v.as_str())), body)
        .map_err(|e| internal(&e))?;
    let output = sign(request, &params).map_err(|e| internal(&e))?;
    Ok(output.signature().to_string())
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/firehose/aws4_request, SignedHeaders=a;b, Signature=hex`
fn header_claim<'a>(value: &'a str, headers: &'a HeaderMap) -> Result<Claim<'a>, ApiError> {
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(ApiError::IncompleteSignature(format!("Authorization header requires the {ALGORITHM} algorithm")));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| {
        ApiError::IncompleteSignature(format!(
            "Authorization header requires '{what}' parameter. Authorization={ALGORITHM} Credential=…, SignedHeaders=…, Signature=…"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ApiError::IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        )
    })?;
    let (access_key_id, scope_date, region, service) = scope(credential)?;
    Ok(Claim {
        access_key_id,
        date,
        scope_date,
        region,
        service,
        signed_headers: signed_headers.split(';').collect(),
        signature,
        presigned: None,
    })
}

fn query_claim<'a>(params: &'a [(String, String)], uri: &Uri) -> Result<Claim<'a>, ApiError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let missing = |what: &str| ApiError::IncompleteSignature(format!("the presigned request lacks {what}"));
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(missing(&format!("X-Amz-Algorithm={ALGORITHM}")));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
    let expires: u64 =
        get("X-Amz-Expires").and_then(|e| e.parse().ok()).ok_or_else(|| missing("X-Amz-Expires (seconds)"))?;
    let (access_key_id, scope_date, region, service) = scope(credential)?;
    // The signer adds the auth parameters back; the rest of the query is passed as sent.
    let rest: Vec<&str> =
        uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty() && !p.starts_with("X-Amz-")).collect();
    Ok(Claim {
        access_key_id,
        date: get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?,
        scope_date,
        region,
        service,
        signed_headers: get("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?.split(';').collect(),
        signature: get("X-Amz-Signature").ok_or_else(|| missing("X-Amz-Signature"))?,
        presigned: Some((Duration::from_secs(expires), rest.join("&"))),
    })
}

/// `AKID/20261202/us-east-1/firehose/aws4_request` → its parts.
fn scope(credential: &str) -> Result<(&str, &str, &str, &str), ApiError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [id, date, region, service, "aws4_request"] => Ok((id, date, region, service)),
        _ => Err(ApiError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            parts.len()
        ))),
    }
}

fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?;
    let secs = u64::try_from(t.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

fn format_amz_date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y%m%dT%H%M%SZ").to_string()
}

fn check_clock(
    signed_at: SystemTime,
    presigned: Option<Duration>,
    now: SystemTime,
    date: &str,
) -> Result<(), ApiError> {
    let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(SystemTime::UNIX_EPOCH);
    let latest = now + MAX_CLOCK_SKEW;
    if signed_at > latest {
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {date} is still later than {} ({} + 5 min.)",
            format_amz_date(latest),
            format_amz_date(now)
        )));
    }
    let expired = match presigned {
        Some(valid_for) => signed_at + valid_for < now,
        None => signed_at < earliest,
    };
    if expired {
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(earliest),
            format_amz_date(now)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::security::Pattern;
    use crate::config::Secret;

    fn key() -> AccessKey {
        AccessKey {
            id: "AKIDEXAMPLE".into(),
            secret: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            streams: vec![Pattern::new("*")],
            actions: vec![],
        }
    }

    /// Signs like an SDK would, with aws-sigv4 itself, and checks the verifier agrees.
    fn signed_request(secret: &str, at: SystemTime, body: &[u8]) -> HeaderMap {
        let identity = Credentials::new("AKIDEXAMPLE", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("firehose")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:4573"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Firehose_20150804.ListDeliveryStreams"),
        ];
        let request =
            SignableRequest::new("POST", "http://127.0.0.1:4573/", headers.iter().copied(), SignableBody::Bytes(body))
                .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, v.parse().unwrap());
        }
        for (k, v) in instructions.headers() {
            map.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_others_do_not() {
        let now = SystemTime::now();
        let keys = [key()];
        let uri: Uri = "/".parse().unwrap();
        let good = signed_request(keys[0].secret.expose(), now, b"{}");
        assert!(authenticate(&keys, &Method::POST, &uri, &good, b"{}", now).is_ok());
        // The body is part of the signature.
        let e = authenticate(&keys, &Method::POST, &uri, &good, b"{ }", now).unwrap_err();
        assert_eq!(e.name(), "InvalidSignatureException");
        let bad = signed_request("not-the-secret-at-all", now, b"{}");
        assert_eq!(
            authenticate(&keys, &Method::POST, &uri, &bad, b"{}", now).unwrap_err().name(),
            "InvalidSignatureException"
        );
        let late = now + Duration::from_secs(301);
        assert_eq!(
            authenticate(&keys, &Method::POST, &uri, &good, b"{}", late).unwrap_err().name(),
            "InvalidSignatureException"
        );
        assert_eq!(
            authenticate(&keys, &Method::POST, &uri, &HeaderMap::new(), b"{}", now).unwrap_err().name(),
            "MissingAuthenticationTokenException"
        );
    }
}
