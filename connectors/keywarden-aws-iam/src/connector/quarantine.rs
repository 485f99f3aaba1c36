//! Leaks AWS itself confirmed: its managed quarantine policies attached to a user.

use aws_sdk_iam::types::UserDetail;

/// The AWS managed quarantine policies attached to a user (`AWSCompromisedKeyQuarantine`, `V2`,
/// `V3`): AWS attaches one when it finds the user's access key exposed. Only AWS's own policies
/// count (`arn:<partition>:iam::aws:policy/...`); a customer policy of the same name does not.
pub(super) fn quarantined_by(user: &UserDetail) -> Vec<String> {
    user.attached_managed_policies()
        .iter()
        .filter_map(|it| it.policy_arn())
        .filter(|arn| {
            let mut parts = arn.splitn(6, ':');
            let (Some("arn"), Some(_partition), Some("iam"), Some(""), Some("aws"), Some(rest)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return false;
            };
            rest.strip_prefix("policy/")
                .is_some_and(|name| name.starts_with(QUARANTINE_POLICY))
        })
        .map(str::to_owned)
        .collect()
}

/// The name AWS's managed quarantine policies start with.
const QUARANTINE_POLICY: &str = "AWSCompromisedKeyQuarantine";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aws_managed_quarantine_policies_confirm_a_leak() {
        use aws_sdk_iam::types::{AttachedPolicy, UserDetail};
        let attached = |arns: &[&str]| {
            let mut user = UserDetail::builder()
                .user_name("ci")
                .arn("arn:aws:iam::1:user/ci");
            for arn in arns {
                user = user
                    .attached_managed_policies(AttachedPolicy::builder().policy_arn(*arn).build());
            }
            quarantined_by(&user.build())
        };
        assert_eq!(
            attached(&[
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
                "arn:aws-cn:iam::aws:policy/AWSCompromisedKeyQuarantine",
            ]),
            [
                "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3",
                "arn:aws-cn:iam::aws:policy/AWSCompromisedKeyQuarantine"
            ]
        );
        assert!(
            attached(&[
                "arn:aws:iam::123456789012:policy/AWSCompromisedKeyQuarantineV3",
                "arn:aws:iam::aws:policy/service-role/AWSCompromisedKeyQuarantineV3",
                "arn:aws:iam::aws:policy/MyAWSCompromisedKeyQuarantine",
            ])
            .is_empty(),
            "a customer's look-alike, another path or name is no confirmation"
        );
    }
}
