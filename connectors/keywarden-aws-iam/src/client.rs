//! Talking to AWS: SDK configuration (credentials, assumed roles, endpoint, adaptive retry), the
//! client-side rate limit shared by every call of a source, and turning SDK errors into
//! [`ConnectorError`]s shaped by what the caller does about them.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_types::SdkConfig;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use keywarden_connector::ConnectorError;

use crate::config::AwsIamConfig;

/// The AWS clients for one account, sharing one rate limit.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub sdk: SdkConfig,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl Clients {
    /// Waits for the rate limiter's permission to make one call.
    pub async fn permit(&self) {
        self.limiter.until_ready().await;
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }

    pub fn organizations(&self) -> aws_sdk_organizations::Client {
        aws_sdk_organizations::Client::new(&self.sdk)
    }
}

/// A client-side rate limiter for `per_second` calls.
pub(crate) fn limiter(per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

/// The base SDK configuration of a source: the standard credential chain (or a profile),
/// region, endpoint override and adaptive retry (standard retry with client-side throttling).
pub(crate) async fn base_config(config: &AwsIamConfig) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
        RetryConfig::adaptive()
            .with_max_attempts(config.max_attempts)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(20)),
    );
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let loaded = loader.load().await;
    let region = config
        .region
        .clone()
        .map(aws_config::Region::new)
        .or_else(|| loaded.region().cloned())
        .unwrap_or_else(|| aws_config::Region::new("us-east-1"));
    loaded.into_builder().region(region).build()
}

/// Clients acting in the base config's own account.
pub(crate) fn clients(sdk: SdkConfig, limiter: Arc<DefaultDirectRateLimiter>) -> Clients {
    Clients {
        iam: aws_sdk_iam::Client::new(&sdk),
        sdk,
        limiter,
    }
}

/// Clients acting in another account through an assumed role. Credentials are fetched (and
/// refreshed) on first use.
pub(crate) async fn assumed(
    base: &SdkConfig,
    role_arn: &str,
    external_id: Option<&str>,
    limiter: Arc<DefaultDirectRateLimiter>,
) -> Clients {
    let mut builder = AssumeRoleProvider::builder(role_arn)
        .session_name("keywarden")
        .configure(base);
    if let Some(external_id) = external_id {
        builder = builder.external_id(external_id);
    }
    let provider = builder.build().await;
    let sdk = base
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build();
    clients(sdk, limiter)
}

/// The error codes AWS uses for throttling (IAM and STS say `Throttling`).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// The error codes that mean keywarden's own identity is not allowed.
const UNAUTHORIZED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "UnrecognizedClientException",
];

/// Turns an SDK error into a [`ConnectorError`]; `what` names the call and its subject.
/// AWS error messages never carry secret values, so the message is kept.
pub(crate) fn map_err<E, R>(what: &str, err: SdkError<E, R>) -> ConnectorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = format!(
                "{what}: {code}: {}",
                service.err().message().unwrap_or("no message")
            );
            if THROTTLING.contains(&code) {
                ConnectorError::Retryable {
                    message,
                    retry_after: None,
                }
            } else if UNAUTHORIZED.contains(&code) {
                ConnectorError::Unauthorized(message)
            } else if code == "NoSuchEntity" || code == "ResourceNotFoundException" {
                ConnectorError::NotFound(message)
            } else if code == "LimitExceeded" || code == "LimitExceededException" {
                // E.g. a third access key: the account's state refuses it; retrying cannot help.
                ConnectorError::Refused(message)
            } else if code == "ServiceFailure" || code == "InternalFailure" {
                ConnectorError::Retryable {
                    message,
                    retry_after: None,
                }
            } else {
                ConnectorError::Permanent(message)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ConnectorError::Retryable {
                message: format!("{what}: {}", aws_sdk_iam::error::DisplayErrorContext(&err)),
                retry_after: None,
            }
        }
        _ => ConnectorError::Permanent(format!(
            "{what}: {}",
            aws_sdk_iam::error::DisplayErrorContext(&err)
        )),
    }
}

/// Runs `call` until it succeeds or fails with something other than throttling: the SDK's own
/// adaptive retry comes first, and when its attempts run out on a throttled call this waits
/// longer and tries again, so throttling slows a scan down and never fails it. Gives up after
/// `ROUNDS` rounds (about ten minutes of back-off), and then says the call was throttled.
pub(crate) async fn persist<T, F, Fut>(clients: &Clients, mut call: F) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
    const ROUNDS: u32 = 10;
    let mut wait = Duration::from_secs(2);
    let mut round = 0;
    loop {
        clients.permit().await;
        match call().await {
            Err(ConnectorError::Retryable {
                message,
                retry_after,
            }) if round < ROUNDS => {
                round += 1;
                let pause = retry_after.unwrap_or(wait);
                tracing::debug!(%message, round, ?pause, "AWS call still throttled; backing off.");
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(Duration::from_secs(120));
            }
            other => return other,
        }
    }
}
