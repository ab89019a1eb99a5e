//! `cadenza`: generate, watch, inspect and download songs from the command line.

mod client;
mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cadenza",
    version,
    about = "Make songs with Cadenza from the command line"
)]
struct Cli {
    /// Gateway address, `host:port` or a URL.
    #[arg(
        long,
        env = "CADENZA_GATEWAY_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    gateway: String,
    /// Access token; in dev mode a dev token is fetched when none is given.
    #[arg(long, env = "CADENZA_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project, generate its song with live progress, save the master.
    Generate(commands::GenerateArgs),
    /// Show a project's status: every stage, progress, queue position, ETA.
    Status { project: String },
    /// Stream a project's stage events until its run finishes.
    Watch {
        project: String,
        /// Resume after this event id.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Save the master of a project's latest run.
    Download {
        project: String,
        #[arg(long, short)]
        out: std::path::PathBuf,
    },
    /// Issue a dev token (dev mode only) and print it.
    DevToken {
        #[arg(long, default_value = "dev")]
        subject: String,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = run(cli).await;
    if let Err(err) = result {
        eprintln!("error: {}", client::explain(&err));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let gateway = client::Gateway::connect(&cli.gateway).await?;
    match cli.command {
        Command::DevToken { subject } => {
            println!("{}", gateway.dev_token(&subject).await?);
            Ok(())
        }
        command => {
            let gateway = gateway.with_token(cli.token).await?;
            match command {
                Command::Generate(args) => commands::generate(&gateway, args).await,
                Command::Status { project } => commands::status(&gateway, &project).await,
                Command::Watch { project, after } => {
                    commands::watch(&gateway, &project, after).await
                }
                Command::Download { project, out } => {
                    commands::download(&gateway, &project, &out).await
                }
                Command::DevToken { .. } => Ok(()),
            }
        }
    }
}
