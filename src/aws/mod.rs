//! The AWS side every AWS-speaking connector shares: credentials as the AWS SDKs find them
//! (`profile.rs`: environment, shared files, web identity, container and instance metadata) and one
//! SigV4-signed JSON request (`request.rs`).
//!
//! Ground floor: imports nothing of ours outside this folder.

pub mod profile;
pub mod request;
