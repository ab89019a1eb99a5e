//! `cadenza-probe ADDRESS [SERVICE]`: asks a Cadenza service's `grpc.health.v1`
//! whether it is SERVING (the overall status, or SERVICE's) and exits 0 if so,
//! 1 if not. For container health checks, where no shell or grpcurl exists.

use std::process::ExitCode;
use std::time::Duration;

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const USAGE: &str = "usage: cadenza-probe HOST:PORT [SERVICE]";
const TIMEOUT: Duration = Duration::from_secs(3);

async fn check(address: &str, service: String) -> Result<ServingStatus, String> {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|err| format!("`{address}` is not an address: {err}"))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect()
        .await
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|status| format!("health check failed: {}", status.message()))?;
    Ok(answer.into_inner().status())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(address) = args.next().filter(|a| a != "-h" && a != "--help") else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let service = args.next().unwrap_or_default();
    match check(&address, service).await {
        Ok(ServingStatus::Serving) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{address}: {}", status.as_str_name());
            ExitCode::FAILURE
        }
        Err(reason) => {
            eprintln!("{reason}");
            ExitCode::FAILURE
        }
    }
}
