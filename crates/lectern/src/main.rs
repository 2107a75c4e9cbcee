//! `lectern`: the one executable of Lectern.
//!
//! - `lectern up` runs the whole system on one machine under a supervisor
//!   ([`up`]);
//! - `lectern serve <service>` runs one service configured from the
//!   environment, as a container does ([`serve`]);
//! - `lectern import FILE...` loads MARC catalogues through the gateway
//!   ([`import`]).
//!
//! Argument parsing is in [`cli`]; each command answers its exit code.

mod cli;
mod import;
mod serve;
mod up;

use std::process::ExitCode;

use clap::Parser as _;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lectern: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Serve(args) => serve::run(args.service).await,
            Command::Import(args) => import::run(args).await,
        }
    })
}
