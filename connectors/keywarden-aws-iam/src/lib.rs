//! keywarden connector `aws_iam`: the IAM users of one or more AWS accounts, with their access
//! keys (and when, where and for what each was last used), signing certificates and SSH public
//! keys; and the single key steps rotation, deactivation, deletion and quarantine are made of.
//!
//! See [`connector`] for which AWS calls the inventory makes and why, and [`AwsIamConfig`] for
//! the configuration.

mod actions;
mod client;
mod config;
pub mod connector;
mod deliver_file;
mod report;

pub use crate::actions::{AwsKeyActions, DENY_POLICY, deny_document};
pub use crate::config::{AccountConfig, AwsIamConfig, DeliverRule, RotationConfig};
pub use crate::connector::AwsIamConnector;
