//! `cloak-bench`: open-loop load generator and benchmark for the Cloak delivery service.
//! See `BENCHMARKS.md` at the repository root for how to run it and the results.

mod cli;
mod fdlimit;
mod load;
mod message;
mod pacer;
mod procfs;
mod report;
mod server;
mod setup;
mod stats;
mod tasks;
mod workloads;
mod ws;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // reqwest is built without a rustls provider of its own (aws-lc-rs needs cmake).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Soft open-files limit up to the hard one, before any server is started (the servers
    // inherit it). Workloads raise it further if they need to and may.
    let _ = fdlimit::raise(0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.common.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cloak-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let env = workloads::Env::new(cli.common)?;
        workloads::run(env, cli.workload).await
    });
    // Connection tasks still draining must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloak-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
