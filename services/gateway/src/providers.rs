//! `ProviderService` at the gateway, for administrators: every `generation`
//! replica keeps its own circuit breakers, so the gateway asks each replica the
//! configured host name resolves to (all pods behind a headless Service) and
//! returns their views side by side, naming the replicas that did not answer.
//! Under mutual TLS each replica is dialled by address but its certificate is
//! checked against the host name that was resolved: certificates name the
//! Service, never a pod's address.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use cadenza_proto::v1::{self, provider_service_client::ProviderServiceClient};
use futures::future::join_all;
use tonic::{Request, Response, Status};

use crate::proxy::{Proxy, admitted};

/// How long one replica may take to answer before it is listed as unreachable.
const REPLICA_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ProviderHealthProxy {
    pub proxy: Proxy,
    /// Asks `project` whether the caller is an administrator now.
    pub administrators: v1::credential_service_client::CredentialServiceClient<
        cadenza_telemetry::grpc::TracedChannel,
    >,
    /// `http://host:port` of `generation` (a headless Service name in Kubernetes).
    pub generation_url: String,
    /// Mutual TLS towards the replicas (`https://` URLs), or plain text.
    pub tls: cadenza_runtime::MeshTls,
    /// The gateway's assertion on each call to a replica.
    pub credentials: cadenza_runtime::tls::Credentials,
}

/// Where the replicas are: the URL's scheme, its host name (the name their
/// certificates carry) and every address that name resolves to.
struct Replicas {
    scheme: String,
    host: String,
    addresses: Vec<SocketAddr>,
}

impl ProviderHealthProxy {
    /// Every address the generation URL's host resolves to, in a stable order.
    async fn replicas(&self) -> Result<Replicas, Status> {
        let uri: http::Uri = self
            .generation_url
            .parse()
            .map_err(|_| Status::internal("CADENZA_GENERATION_URL is not a URL"))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri
            .host()
            .ok_or_else(|| Status::internal("CADENZA_GENERATION_URL has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let found: BTreeSet<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, host, "could not resolve the generation replicas");
                Status::unavailable("the generation service cannot be found right now")
            })?
            .collect();
        Ok(Replicas {
            scheme,
            host,
            addresses: found.into_iter().collect(),
        })
    }
}

async fn ask(
    tls: &cadenza_runtime::MeshTls,
    credentials: &cadenza_runtime::tls::Credentials,
    replicas: &Replicas,
    addr: SocketAddr,
) -> Result<v1::GetProviderHealthResponse, String> {
    let url = format!("{}://{addr}", replicas.scheme);
    let channel = tls
        .channel_named(&url, &replicas.host, credentials.clone())
        .map_err(|err| format!("{err:#}"))?;
    let mut client = ProviderServiceClient::new(channel);
    let call = client.get_provider_health(v1::GetProviderHealthRequest {});
    match tokio::time::timeout(REPLICA_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.message().to_owned()),
        Err(_) => Err("timed out".into()),
    }
}

#[tonic::async_trait]
impl v1::provider_service_server::ProviderService for ProviderHealthProxy {
    async fn get_provider_health(
        &self,
        request: Request<v1::GetProviderHealthRequest>,
    ) -> Result<Response<v1::GetProviderHealthResponse>, Status> {
        // The access layer checked the role in the caller's token; the role in
        // the database decides, so a demotion takes effect at once here too.
        let admitted = admitted(&request)?;
        let confirm = crate::auth::upstream(
            &self.proxy.mesh,
            admitted.caller.as_ref(),
            admitted.address,
            v1::ConfirmAdministratorRequest {},
        )?;
        self.administrators
            .clone()
            .confirm_administrator(confirm)
            .await?;
        let replicas = self.replicas().await?;
        let answers = join_all(
            replicas
                .addresses
                .iter()
                .map(|addr| ask(&self.tls, &self.credentials, &replicas, *addr)),
        )
        .await;
        let mut merged = v1::GetProviderHealthResponse::default();
        for (addr, answer) in replicas.addresses.iter().zip(answers) {
            match answer {
                Ok(view) => merged.providers.extend(view.providers),
                Err(reason) => {
                    tracing::warn!(%addr, reason, "a generation replica did not report its providers");
                    merged.unreachable_replicas.push(addr.to_string());
                }
            }
        }
        if merged.providers.is_empty() && !merged.unreachable_replicas.is_empty() {
            return Err(Status::unavailable(
                "no generation replica answered; provider health is unknown",
            ));
        }
        Ok(Response::new(merged))
    }
}
