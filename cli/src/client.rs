//! Connecting to the gateway, authenticating, and turning errors into sentences.

use anyhow::Context;
use cadenza_proto::v1;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_types::StatusExt;

pub struct Gateway {
    pub channel: Channel,
    token: Option<String>,
}

impl Gateway {
    pub async fn connect(address: &str) -> anyhow::Result<Self> {
        let url = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let channel = Channel::from_shared(url.clone())
            .with_context(|| format!("`{address}` is not a valid gateway address"))?
            .connect()
            .await
            .with_context(|| {
                format!("cannot reach the Cadenza gateway at {url}; is it running (`make run`)?")
            })?;
        Ok(Self {
            channel,
            token: None,
        })
    }

    pub async fn dev_token(&self, subject: &str) -> anyhow::Result<String> {
        let mut dev = v1::dev_service_client::DevServiceClient::new(self.channel.clone());
        let response = dev
            .issue_dev_token(v1::IssueDevTokenRequest {
                subject: subject.into(),
                ttl_seconds: 0,
            })
            .await
            .map_err(|status| {
                if status.code() == tonic::Code::Unimplemented {
                    anyhow::anyhow!(
                        "the gateway is not in dev mode; set CADENZA_TOKEN to an access token"
                    )
                } else {
                    anyhow::Error::new(status)
                }
            })?;
        Ok(response.into_inner().token)
    }

    /// Uses `token`, or in dev mode fetches a dev token.
    pub async fn with_token(mut self, token: Option<String>) -> anyhow::Result<Self> {
        self.token = Some(match token {
            Some(token) => token,
            None => {
                let token = self.dev_token("dev").await?;
                eprintln!("(no CADENZA_TOKEN set: using a dev token for `dev`)");
                token
            }
        });
        Ok(self)
    }

    /// Wraps a message with the bearer token.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .context("the token has characters a header cannot carry")?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    pub fn projects(&self) -> v1::project_service_client::ProjectServiceClient<Channel> {
        v1::project_service_client::ProjectServiceClient::new(self.channel.clone())
    }

    pub fn assets(&self) -> v1::asset_service_client::AssetServiceClient<Channel> {
        v1::asset_service_client::AssetServiceClient::new(self.channel.clone())
            .max_decoding_message_size(8 << 20)
    }
}

/// A gRPC error as a sentence, with each bad field on its own line.
pub fn explain(err: &anyhow::Error) -> String {
    let Some(status) = err.downcast_ref::<tonic::Status>() else {
        return format!("{err:#}");
    };
    let mut text = status.message().to_owned();
    if let Some(bad) = status.get_details_bad_request() {
        text = bad
            .field_violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("\n  ");
    }
    format!("{text} ({:?})", status.code())
}
