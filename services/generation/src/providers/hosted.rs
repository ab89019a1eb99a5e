//! Hosted model APIs behind their queue interfaces: submit a job, poll its
//! status (with logs), fetch the result, download the files it names, and cancel
//! it when we give up. `fal` and `replicate` differ only in paths, the
//! authorization header and the shape of their JSON, which [`Flavor`] captures.
//!
//! A hosted stage answers with the files of the stage as URLs on the provider's
//! side: `{"outputs": [{"kind": "mix", "name": "mix.wav", "url": ...,
//! "content_type": "audio/wav"}]}`. They are downloaded at once (hosted
//! providers delete them within hours) and stored like any other artifact.

use std::time::{Duration, Instant};

use cadenza_config::{ExposeSecret, SecretString};
use cadenza_synth::{Artifact, ArtifactKind};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::redact::Redactor;
use super::{Job, Progress, Provider, ProviderError, Ran, required_outputs, stage_name};

/// Which queue API a hosted provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `POST {base}/{model}` then `status_url`, `response_url`, `cancel_url`;
    /// `Authorization: Key ...`.
    Fal,
    /// `POST {base}/v1/predictions` then `urls.get`, `urls.cancel`;
    /// `Authorization: Bearer ...`.
    Replicate,
}

#[derive(Debug, Clone)]
pub struct HostedConfig {
    pub base_url: String,
    pub key: SecretString,
    /// The model (fal: its path; replicate: its version).
    pub model: String,
    /// Longest any one HTTP call may take.
    pub http_timeout: Duration,
    /// Longest one job may take from submission to its last file.
    pub job_timeout: Duration,
    pub poll_interval: Duration,
    /// Largest output file accepted (`CADENZA_PROVIDER_MAX_DOWNLOAD_BYTES`): a
    /// provider's answer is untrusted input, and a worker must not hold an
    /// unbounded download in memory.
    pub max_download_bytes: u64,
}

/// Largest JSON answer read from a provider (a status with its logs).
const MAX_ANSWER_BYTES: u64 = 4 << 20;

pub struct Hosted {
    name: &'static str,
    flavor: Flavor,
    config: HostedConfig,
    client: reqwest::Client,
}

/// Where to follow a submitted job.
#[derive(Debug)]
struct Submitted {
    id: String,
    status_url: String,
    result_url: Option<String>,
    cancel_url: Option<String>,
}

/// What a poll found.
enum Polled {
    Waiting { progress: f32 },
    Done(Value),
    Failed(String),
    Cancelled,
}

#[derive(Debug, Deserialize)]
struct Output {
    kind: String,
    name: String,
    url: String,
    #[serde(default)]
    content_type: String,
}

#[derive(Debug, Deserialize)]
struct Outputs {
    outputs: Vec<Output>,
}

fn kind_of(slug: &str) -> Option<ArtifactKind> {
    Some(match slug {
        "lyrics" => ArtifactKind::Lyrics,
        "composition" => ArtifactKind::Composition,
        "arrangement" => ArtifactKind::Arrangement,
        "midi" => ArtifactKind::Midi,
        "vocals" => ArtifactKind::Vocals,
        "stem" => ArtifactKind::Stem,
        "mix" => ArtifactKind::Mix,
        "master" => ArtifactKind::Master,
        "master_flac" => ArtifactKind::MasterFlac,
        "preview" => ArtifactKind::Preview,
        "peaks" => ArtifactKind::Peaks,
        _ => return None,
    })
}

/// A failed HTTP answer: refusals are permanent, overload and server errors not.
fn classify(status: StatusCode, what: &str) -> ProviderError {
    let message = format!("{what} answered HTTP {}", status.as_u16());
    match status.as_u16() {
        401 | 403 => ProviderError::permanent("PROVIDER_AUTH", message),
        400 | 404 | 405 | 409 | 410 | 413 | 422 => {
            ProviderError::permanent("PROVIDER_REJECTED", message)
        }
        408 | 429 => ProviderError::transient("PROVIDER_BUSY", message),
        500..=599 => ProviderError::transient("PROVIDER_5XX", message),
        _ => ProviderError::transient("PROVIDER_HTTP", message),
    }
}

/// A response's body, refused once it passes `limit` bytes (declared or
/// received): PROVIDER_OUTPUT_TOO_LARGE, not retried.
async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = || {
        ProviderError::permanent(
            "PROVIDER_OUTPUT_TOO_LARGE",
            format!("{what} is larger than {limit} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|declared| declared > limit)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network(&e, what))? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn network(err: &reqwest::Error, what: &str) -> ProviderError {
    if err.is_timeout() {
        ProviderError::transient("PROVIDER_TIMEOUT", format!("{what} did not answer in time"))
    } else if err.is_decode() {
        ProviderError::transient(
            "PROVIDER_MALFORMED",
            format!("{what} sent a body that could not be read"),
        )
    } else {
        ProviderError::transient(
            "PROVIDER_UNREACHABLE",
            format!("{what} could not be reached"),
        )
    }
}

fn malformed(what: &str) -> ProviderError {
    ProviderError::transient(
        "PROVIDER_MALFORMED",
        format!("{what} sent JSON of an unexpected shape"),
    )
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Hosted {
    /// Fails only when the HTTP client cannot be built (no TLS roots, say): a
    /// client without its timeouts would let a hung provider hang the stage.
    pub fn new(
        name: &'static str,
        flavor: Flavor,
        config: HostedConfig,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Self {
            name,
            flavor,
            config,
            client,
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let key = self.config.key.expose_secret();
        match self.flavor {
            Flavor::Fal => request.header("authorization", format!("Key {key}")),
            Flavor::Replicate => request.header("authorization", format!("Bearer {key}")),
        }
    }

    /// Sends a request and reads a JSON answer, classifying every failure.
    async fn json(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Value, ProviderError> {
        let response = self
            .authorize(request)
            .send()
            .await
            .map_err(|e| network(&e, what))?;
        if !response.status().is_success() {
            return Err(classify(response.status(), what));
        }
        let body = read_capped(response, MAX_ANSWER_BYTES, what).await?;
        serde_json::from_slice(&body).map_err(|_| malformed(what))
    }

    fn input(job: &Job<'_>) -> Value {
        let spec = job.request;
        json!({
            "stage": stage_name(job.stage),
            "prompt": spec.prompt,
            "duration_seconds": spec.duration_seconds,
            "has_vocals": spec.has_vocals,
            "style_strength": spec.style_strength,
            "seed": spec.seed,
            "lyrics": spec.lyrics,
            "inputs": job.input_urls.iter().map(|(name, url)| json!({"name": name, "url": url})).collect::<Vec<_>>(),
        })
    }

    async fn submit(&self, job: &Job<'_>) -> Result<Submitted, ProviderError> {
        let base = self.config.base_url.trim_end_matches('/');
        let what = "the job submission";
        match self.flavor {
            Flavor::Fal => {
                let url = format!("{base}/{}", self.config.model.trim_start_matches('/'));
                let answer = self
                    .json(self.client.post(url).json(&Self::input(job)), what)
                    .await?;
                Ok(Submitted {
                    id: text(&answer, "request_id").ok_or_else(|| malformed(what))?,
                    status_url: text(&answer, "status_url").ok_or_else(|| malformed(what))?,
                    result_url: text(&answer, "response_url"),
                    cancel_url: text(&answer, "cancel_url"),
                })
            }
            Flavor::Replicate => {
                let url = format!("{base}/v1/predictions");
                let body = json!({"version": self.config.model, "input": Self::input(job)});
                let answer = self
                    .json(
                        self.client
                            .post(url)
                            .header("prefer", "respond-async")
                            .json(&body),
                        what,
                    )
                    .await?;
                let urls = answer.get("urls").ok_or_else(|| malformed(what))?;
                Ok(Submitted {
                    id: text(&answer, "id").ok_or_else(|| malformed(what))?,
                    status_url: text(urls, "get").ok_or_else(|| malformed(what))?,
                    result_url: None,
                    cancel_url: text(urls, "cancel"),
                })
            }
        }
    }

    async fn poll(&self, job: &Submitted) -> Result<(Polled, Vec<String>), ProviderError> {
        let what = "the job status";
        match self.flavor {
            Flavor::Fal => {
                let answer = self
                    .json(
                        self.client.get(&job.status_url).query(&[("logs", "1")]),
                        what,
                    )
                    .await?;
                let logs = answer
                    .get("logs")
                    .and_then(Value::as_array)
                    .map(|lines| lines.iter().filter_map(|l| text(l, "message")).collect())
                    .unwrap_or_default();
                let polled = match answer.get("status").and_then(Value::as_str) {
                    Some("IN_QUEUE") => Polled::Waiting { progress: 0.05 },
                    Some("IN_PROGRESS") => Polled::Waiting { progress: 0.5 },
                    Some("COMPLETED") => match text(&answer, "error") {
                        Some(error) => Polled::Failed(error),
                        None => {
                            let url = job.result_url.as_deref().ok_or_else(|| malformed(what))?;
                            Polled::Done(self.json(self.client.get(url), "the job result").await?)
                        }
                    },
                    _ => return Err(malformed(what)),
                };
                Ok((polled, logs))
            }
            Flavor::Replicate => {
                let answer = self.json(self.client.get(&job.status_url), what).await?;
                let logs = text(&answer, "logs")
                    .map(|all| all.lines().map(str::to_owned).collect())
                    .unwrap_or_default();
                let polled = match answer.get("status").and_then(Value::as_str) {
                    Some("starting") => Polled::Waiting { progress: 0.05 },
                    Some("processing") => Polled::Waiting { progress: 0.5 },
                    Some("succeeded") => Polled::Done(
                        answer
                            .get("output")
                            .cloned()
                            .ok_or_else(|| malformed(what))?,
                    ),
                    Some("failed") => Polled::Failed(
                        text(&answer, "error").unwrap_or_else(|| "the model failed".into()),
                    ),
                    Some("canceled") => Polled::Cancelled,
                    _ => return Err(malformed(what)),
                };
                Ok((polled, logs))
            }
        }
    }

    /// Best effort: a job we stopped waiting for should not keep running (and
    /// billing). "Already completed" answers are fine.
    async fn cancel(&self, job: &Submitted) {
        let Some(url) = &job.cancel_url else { return };
        let request = match self.flavor {
            Flavor::Fal => self.client.put(url),
            Flavor::Replicate => self.client.post(url),
        };
        match self.authorize(request).send().await {
            Ok(r) if r.status().is_success() || r.status() == StatusCode::CONFLICT => {
                tracing::info!(provider = self.name, job = %job.id, "cancelled the remote job");
            }
            Ok(r) => {
                tracing::warn!(provider = self.name, job = %job.id, status = r.status().as_u16(), "cancelling the remote job failed")
            }
            Err(err) => {
                tracing::warn!(provider = self.name, job = %job.id, error = %err, "cancelling the remote job failed")
            }
        }
    }

    async fn download(
        &self,
        outputs: Value,
        job: &Job<'_>,
    ) -> Result<Vec<Artifact>, ProviderError> {
        let Outputs { outputs } =
            serde_json::from_value(outputs).map_err(|_| malformed("the job result"))?;
        let mut artifacts = Vec::with_capacity(outputs.len());
        for output in outputs {
            let kind = kind_of(&output.kind).ok_or_else(|| malformed("the job result"))?;
            if output.name.is_empty() || output.name.contains("..") || output.name.starts_with('/')
            {
                return Err(malformed("the job result"));
            }
            // Output URLs come from the provider: fetched without our key.
            let response = self
                .client
                .get(&output.url)
                .send()
                .await
                .map_err(|e| network(&e, "an output download"))?;
            if !response.status().is_success() {
                return Err(ProviderError::transient(
                    "PROVIDER_DOWNLOAD",
                    format!(
                        "an output download answered HTTP {}",
                        response.status().as_u16()
                    ),
                ));
            }
            let bytes = read_capped(
                response,
                self.config.max_download_bytes,
                "an output download",
            )
            .await?;
            artifacts.push(Artifact {
                kind,
                name: output.name,
                content_type: if output.content_type.is_empty() {
                    "application/octet-stream".into()
                } else {
                    output.content_type
                },
                bytes,
            });
        }
        for needed in required_outputs(job.stage) {
            if !artifacts.iter().any(|a| a.kind == *needed) {
                return Err(ProviderError::transient(
                    "PROVIDER_INCOMPLETE",
                    format!("the result lacks its {needed:?} output"),
                ));
            }
        }
        Ok(artifacts)
    }
}

/// Longest provider line kept in our logs.
const MAX_LOG_CHARS: usize = 500;

/// A provider's words for our logs: fragments of the prompt or lyrics they
/// echo hidden ([`super::redact`]), and cut short.
fn loggable(redactor: &Redactor, line: &str) -> String {
    redactor.redact(line).chars().take(MAX_LOG_CHARS).collect()
}

#[async_trait::async_trait]
impl Provider for Hosted {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self, job: &Job<'_>, progress: Progress<'_>) -> Result<Ran, ProviderError> {
        let deadline = Instant::now() + self.config.job_timeout;
        // Provider logs may echo what they were sent: the prompt and lyrics
        // never reach our logs, however reformatted.
        let redactor = Redactor::new(
            [
                Some(job.request.prompt.as_str()),
                job.request.lyrics.as_deref(),
            ]
            .into_iter()
            .flatten(),
        );
        let submitted = self.submit(job).await?;
        tracing::info!(provider = self.name, job = %submitted.id, stage = stage_name(job.stage), "submitted a hosted job");
        let mut seen_logs = 0;
        loop {
            if job.cancel.is_cancelled() {
                self.cancel(&submitted).await;
                return Err(ProviderError::Cancelled);
            }
            if Instant::now() >= deadline {
                self.cancel(&submitted).await;
                return Err(ProviderError::transient(
                    "PROVIDER_TIMEOUT",
                    format!(
                        "the job did not finish within {} s",
                        self.config.job_timeout.as_secs()
                    ),
                ));
            }
            let (polled, logs) = match self.poll(&submitted).await {
                Ok(answer) => answer,
                Err(err) => {
                    self.cancel(&submitted).await;
                    return Err(err);
                }
            };
            for line in logs.iter().skip(seen_logs) {
                tracing::info!(provider = self.name, job = %submitted.id, log = %loggable(&redactor, line), "provider log");
            }
            seen_logs = seen_logs.max(logs.len());
            match polled {
                Polled::Waiting { progress: p } => progress(p),
                Polled::Done(outputs) => {
                    progress(0.9);
                    return Ok(Ran {
                        artifacts: self.download(outputs, job).await?,
                        version: self.config.model.clone(),
                        job_id: submitted.id.clone(),
                    });
                }
                Polled::Failed(error) => {
                    return Err(ProviderError::transient(
                        "PROVIDER_JOB_FAILED",
                        format!("the job failed: {}", loggable(&redactor, &error)),
                    ));
                }
                Polled::Cancelled => return Err(ProviderError::Cancelled),
            }
            tokio::select! {
                () = job.cancel.cancelled() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }
}
