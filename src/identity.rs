//! Who the daemon says it is in ARNs and messages: `api.account_id` and `api.region`.
//!
//! Firehose ARNs need an account and a region; sluice has neither, so both are settings (tests
//! written for moto expect `123456789012`). The identity is a value passed to whoever builds an ARN,
//! never a process-wide global: a global was once initialised by config loading before the daemon
//! set it, and every ARN then said `000000000000` (issue #23).
//!
//! Ground floor: imports nothing of ours.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub account_id: String,
    pub region: String,
}

impl Default for Identity {
    fn default() -> Self {
        Self { account_id: "000000000000".into(), region: "us-east-1".into() }
    }
}

impl Identity {
    /// A delivery stream's ARN, as DescribeDeliveryStream shows it and the HTTP endpoint sends it.
    pub fn stream_arn(&self, name: &str) -> String {
        format!("arn:aws:firehose:{}:{}:deliverystream/{name}", self.region, self.account_id)
    }

    /// Every delivery stream of this account, for messages about no stream in particular.
    pub fn any_stream_arn(&self) -> String {
        format!("arn:aws:firehose:*:{}:deliverystream/*", self.account_id)
    }

    /// The placeholder role described for destinations declared in YAML.
    pub fn role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/sluice", self.account_id)
    }

    /// A caller, as AccessDenied messages name it.
    pub fn user_arn(&self, key_id: &str) -> String {
        format!("arn:aws:iam::{}:user/{key_id}", self.account_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_carry_the_configured_account_and_region() {
        let id = Identity { account_id: "123456789012".into(), region: "eu-west-1".into() };
        assert_eq!(id.stream_arn("s"), "arn:aws:firehose:eu-west-1:123456789012:deliverystream/s");
        assert_eq!(id.role_arn(), "arn:aws:iam::123456789012:role/sluice");
    }
}
