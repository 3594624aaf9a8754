//! The `taskq` command: parse, run, print the report, exit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use taskq::cli::{Cli, Command};
use taskq::Report;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            let config = args.to_config();
            let report = taskq::runner::run(&config)?;
            emit(&report, args.report.as_deref())?;
            Ok(ExitCode::from(taskq::runner::exit_code(&report)))
        }
        Command::Generate(args) => {
            let opts = args.to_options();
            let written = if args.out.as_os_str() == "-" {
                taskq::generate::write_tasks(&opts, std::io::stdout().lock())
            } else {
                let file = File::create(&args.out)
                    .with_context(|| format!("cannot create {}", args.out.display()))?;
                taskq::generate::write_tasks(&opts, BufWriter::new(file))
            }
            .with_context(|| format!("cannot write {}", args.out.display()))?;
            if args.out.as_os_str() != "-" {
                eprintln!("wrote {written} tasks to {}", args.out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the summary (or the JSON, with `--report -`) and writes the report file.
fn emit(report: &Report, path: Option<&Path>) -> anyhow::Result<()> {
    match path {
        Some(p) if p.as_os_str() == "-" => println!("{}", report.to_json()),
        Some(p) => {
            println!("{}", report.summary());
            let mut f =
                File::create(p).with_context(|| format!("cannot write report {}", p.display()))?;
            f.write_all(report.to_json().as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .with_context(|| format!("cannot write report {}", p.display()))?;
            println!("report: {}", p.display());
        }
        None => println!("{}", report.summary()),
    }
    Ok(())
}
