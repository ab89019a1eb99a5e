//! The subcommands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cadenza_proto::v1::{self, StageKind, StageState, stage_event::Type};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::client::Gateway;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// What the song should be, in words.
    prompt: String,
    /// Length in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u32,
    /// Sing the melody on lyrics.
    #[arg(long)]
    vocals: bool,
    /// Seed; the same prompt and seed make the same song.
    #[arg(long)]
    seed: Option<u64>,
    /// How strongly to follow the genre, 0 to 1.
    #[arg(long, default_value_t = 0.6)]
    style: f32,
    /// A file of lyrics to sing instead of generated ones.
    #[arg(long)]
    lyrics: Option<PathBuf>,
    /// Where to write the master WAV.
    #[arg(long, short, default_value = "song.wav")]
    out: PathBuf,
}

const KINDS: [StageKind; 6] = [
    StageKind::Lyrics,
    StageKind::Composition,
    StageKind::Arrangement,
    StageKind::Vocals,
    StageKind::Mix,
    StageKind::Master,
];

fn label(kind: StageKind) -> &'static str {
    cadenza_proto::stage_slug(kind)
}

pub async fn generate(gateway: &Gateway, args: GenerateArgs) -> anyhow::Result<()> {
    let lyrics = match &args.lyrics {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading lyrics from {}", path.display()))?,
        ),
        None => None,
    };
    let mut projects = gateway.projects();
    let project = projects
        .create_project(gateway.request(v1::CreateProjectRequest {
            project: Some(v1::Project {
                prompt: args.prompt.clone(),
                duration_seconds: args.duration,
                has_vocals: args.vocals,
                style_strength: args.style,
                seed: args.seed,
                lyrics,
                ..Default::default()
            }),
            request_id: String::new(),
        })?)
        .await?
        .into_inner();
    let run = projects
        .generate_song(gateway.request(v1::GenerateSongRequest {
            name: project.name.clone(),
            request_id: String::new(),
        })?)
        .await?
        .into_inner();
    eprintln!("{} — run {} (seed {})", project.name, run.name, run.seed);

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut by_kind: HashMap<StageKind, ProgressBar> = HashMap::new();
    for stage in &run.stages {
        if stage.state() == StageState::Skipped {
            continue;
        }
        let bar = bars.add(ProgressBar::new(100));
        bar.set_style(style.clone());
        bar.set_prefix(label(stage.kind()));
        bar.set_message("waiting");
        by_kind.insert(stage.kind(), bar);
    }
    let finished = follow(gateway, &project.name, 0, |event| {
        if let Some(bar) = by_kind.get(&event.stage_kind()) {
            bar.set_position((event.progress * 100.0) as u64);
            match event.r#type() {
                Type::StageQueued if event.attempt > 1 => {
                    bar.set_message(format!("retry {}", event.attempt))
                }
                Type::StageQueued => bar.set_message("queued"),
                Type::StageStarted | Type::StageProgress => bar.set_message("rendering"),
                Type::StageSucceeded => bar.finish_with_message("done"),
                Type::StageFailed => bar.abandon_with_message(format!("failed: {}", event.message)),
                Type::StageCancelled => bar.abandon_with_message("cancelled"),
                _ => {}
            }
        }
    })
    .await?;
    if finished.run_state() != v1::RunState::Succeeded {
        anyhow::bail!(
            "the song was not made: {}",
            if finished.message.is_empty() {
                "the run was cancelled"
            } else {
                &finished.message
            }
        );
    }
    let bytes = save_master(gateway, &project.name, &args.out).await?;
    println!(
        "{} ({:.1} MB)",
        absolute(&args.out).display(),
        bytes as f64 / 1e6
    );
    Ok(())
}

/// Streams events after `after` to `on_event` until a run finishes; returns that event.
async fn follow(
    gateway: &Gateway,
    project: &str,
    after: i64,
    mut on_event: impl FnMut(&v1::StageEvent),
) -> anyhow::Result<v1::StageEvent> {
    let mut last = after;
    loop {
        let mut stream = gateway
            .projects()
            .watch_project(gateway.request(v1::WatchProjectRequest {
                name: project.into(),
                after_event_id: last,
            })?)
            .await?
            .into_inner();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    last = event.event_id;
                    on_event(&event);
                    if event.r#type() == Type::RunFinished {
                        return Ok(event);
                    }
                }
                // A dropped connection resumes where it stopped.
                Err(status) if status.code() == tonic::Code::Unavailable => break,
                Err(status) => return Err(status.into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn project_status(gateway: &Gateway, project: &str) -> anyhow::Result<v1::ProjectStatus> {
    let request = gateway.request(v1::GetProjectStatusRequest {
        name: project.into(),
    })?;
    Ok(gateway
        .projects()
        .get_project_status(request)
        .await?
        .into_inner())
}

async fn save_master(gateway: &Gateway, project: &str, out: &Path) -> anyhow::Result<u64> {
    let mut assets = gateway.assets();
    let status = project_status(gateway, project).await?;
    let listed = assets
        .list_assets(gateway.request(v1::ListAssetsRequest {
            parent: status.run.clone(),
            page_size: 200,
            page_token: String::new(),
        })?)
        .await?
        .into_inner();
    let master = listed
        .assets
        .iter()
        .find(|a| a.kind() == v1::AssetKind::Master)
        .context("the latest run has no master yet")?;
    let mut stream = assets
        .read_asset(gateway.request(v1::ReadAssetRequest {
            name: master.name.clone(),
        })?)
        .await?
        .into_inner();
    // Write beside the target, then rename: a failed download leaves no broken file.
    let partial = out.with_extension("part");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk.data).await?;
        written += chunk.data.len() as u64;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    tokio::fs::rename(&partial, out)
        .await
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(written)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub async fn status(gateway: &Gateway, project: &str) -> anyhow::Result<()> {
    let status = project_status(gateway, project).await?;
    if status.run.is_empty() {
        println!("{}: never generated", status.project);
        return Ok(());
    }
    println!(
        "{}  {:?}  {:.0}%",
        status.run,
        status.state(),
        status.progress * 100.0
    );
    if status.queue_position > 0 {
        println!("  {} stages ahead in the queue", status.queue_position);
    }
    if let Some(eta) = status.eta {
        println!("  about {} s left", eta.seconds);
    }
    for stage in KINDS
        .iter()
        .filter_map(|k| status.stages.iter().find(|s| s.kind() == *k))
    {
        let mut line = format!(
            "  {:<12} {:<10} {:>3.0}%",
            label(stage.kind()),
            format!("{:?}", stage.state()).to_lowercase(),
            stage.progress * 100.0
        );
        if stage.attempt > 1 {
            line.push_str(&format!("  attempt {}", stage.attempt));
        }
        if !stage.provider.is_empty() {
            line.push_str(&format!("  via {}", stage.provider));
        }
        if !stage.error_code.is_empty() {
            line.push_str(&format!("  error {}", stage.error_code));
        }
        println!("{line}");
    }
    Ok(())
}

pub async fn watch(gateway: &Gateway, project: &str, after: i64) -> anyhow::Result<()> {
    follow(gateway, project, after, |event| {
        let stage = if event.stage_kind() == StageKind::Unspecified {
            String::new()
        } else {
            format!(" {}", label(event.stage_kind()))
        };
        let message = if event.message.is_empty() {
            String::new()
        } else {
            format!(" — {}", event.message)
        };
        println!(
            "#{:<5} {:?}{stage} {:.0}%{message}",
            event.event_id,
            event.r#type(),
            event.progress * 100.0
        );
    })
    .await?;
    Ok(())
}

pub async fn download(gateway: &Gateway, project: &str, out: &Path) -> anyhow::Result<()> {
    let bytes = save_master(gateway, project, out).await?;
    println!("{} ({:.1} MB)", absolute(out).display(), bytes as f64 / 1e6);
    Ok(())
}
