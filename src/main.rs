//! The `tocsin` command: flags in, library calls out. Exit codes: 0 clean, 1 the
//! rules (or formatting) have problems, 2 usage or I/O error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tocsin::rules::{self, CheckOptions, SourceFile, diagnostic};

/// The daemon allocates and frees many small objects per request (label sets,
/// JSON values, redb pages); glibc's malloc took a quarter of the intake profile.
/// `--features system-allocator` builds with the system's malloc instead, for
/// heap profilers that hook it (heaptrack; see BENCHMARKS.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Has mimalloc give freed memory back at once and commit arena memory as it is
/// used. Its defaults keep more resident: the load harness's re-sent alerts phase
/// peaked at 101 MiB with them and 70 MiB without, at the same throughput.
#[cfg(not(feature = "system-allocator"))]
fn tune_allocator() {
    // Positions in mimalloc's `mi_option_t` (include/mimalloc.h of the v3 sources
    // libmimalloc-sys builds; the sys crate does not name these two).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

#[derive(Parser)]
#[command(name = "tocsin", version, about = "A rule-engine alert manager")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: evaluate rules over pushed samples, keep alert state in redb,
    /// notify on the console, serve the HTTP API. With no config file, the embedded
    /// default: rules/, data/tocsin.redb, 127.0.0.1:9095, the console channel.
    Serve {
        /// The config file (see tocsin.example.toml).
        #[arg(long, env = "TOCSIN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show the whole product in two minutes: the daemon with the shipped rules, a
    /// simulated fleet of 100 bots on a fast clock, incidents that fire, escalate on
    /// the console and resolve, and the web UI to watch and ack them. Uses its own
    /// temporary state (never ./data) and sends nothing off this machine.
    Demo {
        /// Where the web UI listens (port 0: any free port; the URL is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// How many times faster than the wall the demo's clock runs.
        #[arg(long, default_value_t = tocsin::demo::SPEED, value_parser = clap::value_parser!(u32).range(1..=3600))]
        speed: u32,
    },
    /// Check rules files or folders; report every error with file:line:col.
    Check {
        /// Rules files, or folders searched for *.rules (default: the config's rules).
        #[arg(required_unless_present = "config")]
        paths: Vec<PathBuf>,
        /// Also validate this config file (and, without PATHs, check its rules).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Check the config's structure without its environment: `${VAR}` is not
        /// looked up, and values that name one are not judged (CI without secrets).
        #[arg(long, requires = "config")]
        no_env: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        limits: Limits,
    },
    /// Rewrite rules files in the one canonical layout.
    Fmt {
        /// Report files that are not formatted (exit 1) instead of rewriting them.
        #[arg(long)]
        check: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run rule unit tests (promtool's `test rules` YAML shape).
    Test {
        /// Test files (`*.test.yml`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[command(flatten)]
        limits: Limits,
    },
    /// List alerts (client of a running tocsin).
    Alerts {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        severity: Option<String>,
        /// `name=value`; repeatable.
        #[arg(long)]
        label: Vec<String>,
        /// Print the API's JSON as is (resolved alerts included).
        #[arg(long)]
        json: bool,
        /// Also list resolved alerts (hidden from the table unless --state asks for them).
        #[arg(long)]
        all: bool,
    },
    /// Show one alert with its timeline (incident number or fingerprint).
    Alert {
        #[command(flatten)]
        server: Server,
        id: String,
    },
    /// Acknowledge an alert: escalation stops.
    Ack {
        #[command(flatten)]
        server: Server,
        id: String,
        #[arg(long)]
        note: Option<String>,
        /// Who acks (ignored when a token is used: the token's name is recorded).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Take an ack back: escalation resumes.
    Unack {
        #[command(flatten)]
        server: Server,
        id: String,
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Resolve an alert by hand.
    Resolve {
        #[command(flatten)]
        server: Server,
        id: String,
        #[arg(long)]
        note: Option<String>,
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Silences: add, list, expire.
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
    },
    /// Export rules to another system's format.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Copy the whole state between a redb file and PostgreSQL, in either
    /// direction, into an empty destination. Stop tocsin first. The PostgreSQL URL
    /// is read from TOCSIN_DATABASE_URL only (never an argument: `ps` shows those).
    Migrate {
        #[arg(value_enum)]
        direction: Direction,
        /// The redb state file (the source, or the new file to write).
        #[arg(long)]
        redb: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Direction {
    /// The redb file into an empty PostgreSQL database.
    RedbToPostgres,
    /// A PostgreSQL database into a new redb file.
    PostgresToRedb,
}

#[derive(Subcommand)]
enum SilenceAction {
    /// Silence alerts matching every MATCHER (`host=bot-1`, `host=~bot-.*`, `sev!=info`).
    Add {
        #[command(flatten)]
        server: Server,
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long, e.g. `2h` or `1h30m`.
        #[arg(long, default_value = "1h", value_parser = checked_duration)]
        duration: String,
        #[arg(long, default_value = "")]
        comment: String,
        #[arg(long, env = "USER")]
        created_by: Option<String>,
    },
    /// List silences.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// Expire a silence now.
    Expire {
        #[command(flatten)]
        server: Server,
        id: String,
    },
}

/// Where the daemon is, for the client commands.
#[derive(clap::Args)]
struct Server {
    /// The tocsin API.
    #[arg(long, env = "TOCSIN_SERVER", default_value = "http://127.0.0.1:9095")]
    server: String,
    /// A bearer token (from the environment; never printed).
    #[arg(long, env = "TOCSIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Server {
    fn client(&self) -> tocsin::client::Client {
        tocsin::client::Client::new(&self.server, self.token.clone())
    }
}

#[derive(Subcommand)]
enum ExportTarget {
    /// Prometheus alerting-rule YAML (for promtool, Prometheus, Mimir, Thanos, VictoriaMetrics).
    Prometheus {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        limits: Limits,
    },
}

#[derive(clap::Args)]
struct Limits {
    /// The longest window a rule may read (memory is sized by it).
    #[arg(long, default_value = "7d", value_parser = tocsin::duration::parse_arg)]
    max_window: Duration,
}

impl Limits {
    fn options(&self) -> CheckOptions {
        CheckOptions {
            max_window: self.max_window,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Source excerpts with the problem underlined.
    Human,
    /// One JSON object per diagnostic per line.
    Json,
}

/// `tocsin migrate`: one whole-state copy; prints what it carried.
fn migrate(direction: Direction, redb: &Path) -> ExitCode {
    use tocsin::store::{PgStore, RedbStore, transfer};
    let var = tocsin::config::DATABASE_URL_VAR;
    let Ok(url) = std::env::var(var) else {
        eprintln!("error: set {var} to the PostgreSQL connection URL");
        return ExitCode::from(2);
    };
    let copied = (|| {
        let pg = PgStore::connect(&url)?;
        match direction {
            Direction::RedbToPostgres => {
                if !redb.exists() {
                    return Err(format!("{}: no such file", redb.display()).into());
                }
                transfer::redb_to_postgres(&RedbStore::open(redb)?, &pg)
            }
            Direction::PostgresToRedb => transfer::postgres_to_redb(&pg, &RedbStore::open(redb)?),
        }
        .map_err(Box::<dyn std::error::Error>::from)
    })();
    match copied {
        Ok(dump) => {
            println!("copied {}", dump.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A duration checked here with the one syntax and sent as written: the daemon reads
/// it the same way.
fn checked_duration(text: &str) -> Result<String, String> {
    tocsin::duration::parse_arg(text).map(|_| text.to_string())
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    tune_allocator();
    // Before any HTTP client exists: reqwest is built without a TLS provider.
    tocsin::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Demo { listen, speed } => demo(listen, speed),
        Command::Check {
            paths,
            config,
            no_env,
            format,
            limits,
        } => match config {
            None => check(&paths, format, &limits.options()),
            Some(file) => match if no_env {
                tocsin::config::Config::check_structure(&file)
            } else {
                tocsin::config::Config::load(Some(&file))
            } {
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
                Ok(c) => {
                    let scope = if no_env {
                        " (structure only: values naming ${VAR} were not judged)"
                    } else {
                        ""
                    };
                    eprintln!("ok: {}{scope}", file.display());
                    let paths = if paths.is_empty() {
                        c.rules.paths.clone()
                    } else {
                        paths
                    };
                    check(&paths, format, &c.check_options())
                }
            },
        },
        Command::Fmt { check, paths } => fmt(&paths, check),
        Command::Test {
            files,
            junit,
            limits,
        } => test(&files, junit.as_deref(), &limits.options()),
        Command::Export {
            target: ExportTarget::Prometheus { paths, limits },
        } => export_prometheus(&paths, &limits.options()),
        Command::Migrate { direction, redb } => migrate(direction, &redb),
        Command::Alerts {
            server,
            state,
            severity,
            label,
            json,
            all,
        } => {
            // Resolved alerts are kept for review; what is open is what people ask.
            // `--json` is the API's answer as is, for scripts.
            let hide_resolved = !all && !json && state.is_none();
            let mut filters: Vec<(String, String)> = Vec::new();
            filters.extend(state.map(|s| ("state".to_string(), s)));
            filters.extend(severity.map(|s| ("severity".to_string(), s)));
            filters.extend(label.into_iter().map(|l| ("label".to_string(), l)));
            client_call(async move {
                let mut body = server.client().alerts(&filters).await?;
                let hidden = if hide_resolved {
                    tocsin::client::hide_resolved(&mut body)
                } else {
                    0
                };
                Ok(if json {
                    format!("{body}\n")
                } else {
                    let mut table = tocsin::client::alerts_table(&body);
                    if hidden > 0 {
                        table.push_str(&format!(
                            "({hidden} resolved not shown; --all lists them)\n"
                        ));
                    }
                    table
                })
            })
        }
        Command::Alert { server, id } => client_call(async move {
            Ok(tocsin::client::alert_details(
                &server.client().alert(&id).await?,
            ))
        }),
        Command::Ack {
            server,
            id,
            note,
            actor,
        } => act(server, id, "ack", actor, note),
        Command::Unack { server, id, actor } => act(server, id, "unack", actor, None),
        Command::Resolve {
            server,
            id,
            note,
            actor,
        } => act(server, id, "resolve", actor, note),
        Command::Silence { action } => match action {
            SilenceAction::Add {
                server,
                matchers,
                duration,
                comment,
                created_by,
            } => {
                let parsed: Result<Vec<_>, _> = matchers
                    .iter()
                    .map(|m| tocsin::matcher::Matcher::parse(m))
                    .collect();
                let matchers = match parsed {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                };
                client_call(async move {
                    let body = serde_json::json!({
                        "matchers": matchers, "duration": duration, "comment": comment, "created_by": created_by,
                    });
                    let s = server.client().add_silence(body).await?;
                    Ok(format!("{}\n", s["id"].as_str().unwrap_or("")))
                })
            }
            SilenceAction::List { server } => client_call(async move {
                Ok(tocsin::client::silences_table(
                    &server.client().silences().await?,
                ))
            }),
            SilenceAction::Expire { server, id } => client_call(async move {
                let s = server.client().expire_silence(&id).await?;
                Ok(format!(
                    "{} {}\n",
                    s["id"].as_str().unwrap_or(""),
                    s["status"].as_str().unwrap_or("")
                ))
            }),
        },
    }
}

/// `ack`, `unack` and `resolve`: one call, then the alert's new state on one line.
fn act(
    server: Server,
    id: String,
    action: &'static str,
    actor: Option<String>,
    note: Option<String>,
) -> ExitCode {
    client_call(async move {
        let a = server
            .client()
            .act(&id, action, actor.as_deref(), note.as_deref())
            .await?;
        Ok(format!("{}\n", tocsin::client::state_line(&a)))
    })
}

/// Runs one client request and prints its output. Exit 1 when the daemon refused,
/// 2 when it could not be reached.
fn client_call(
    call: impl std::future::Future<Output = Result<String, tocsin::client::ClientError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(call) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e @ tocsin::client::ClientError::Refused(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the daemon until SIGINT or SIGTERM.
fn serve(config_path: Option<&std::path::Path>) -> ExitCode {
    let config = match tocsin::config::Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colours only for a person at a terminal: a redirected stderr (a file,
    // journald) would get escape codes in every line.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log.format {
        tocsin::config::LogFormat::Json => logs.json().init(),
        tocsin::config::LogFormat::Text => logs.init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let clock = std::sync::Arc::new(tocsin::clock::SystemClock);
        let running = match tocsin::server::start(config, clock).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        // Said once everything opened, so a refusal to start stays one clear line.
        let source = config_path.map_or_else(
            || "embedded default".to_string(),
            |p| p.display().to_string(),
        );
        tracing::info!(config = %source, addr = %running.addr, "tocsin started");
        shutdown_signal().await;
        running.stop().await;
        ExitCode::SUCCESS
    })
}

fn demo(listen: std::net::SocketAddr, speed: u32) -> ExitCode {
    // Warnings only: the console's pages are the show.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(tocsin::demo::run(listen, speed, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn read(paths: &[PathBuf]) -> Result<Vec<SourceFile>, ExitCode> {
    rules::read_sources(paths).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn check(paths: &[PathBuf], format: Format, options: &CheckOptions) -> ExitCode {
    let sources = match read(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match rules::check_sources(&sources, options) {
        Ok(set) => {
            if let Format::Human = format {
                eprintln!(
                    "ok: {} in {}",
                    plural(set.alerts.len(), "alert rule"),
                    plural(sources.len(), "file")
                );
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            report(&sources, &diags, format);
            ExitCode::from(1)
        }
    }
}

/// `1 file`, `7 files`.
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn report(sources: &[SourceFile], diags: &[rules::Diagnostic], format: Format) {
    match format {
        Format::Human => {
            let color = std::io::stderr().is_terminal();
            eprint!("{}", diagnostic::render(sources, diags, color));
            eprintln!("error: {} found", plural(diags.len(), "problem"));
        }
        Format::Json => {
            for d in diags {
                let json = serde_json::to_string(&diagnostic::to_json(sources, d))
                    .expect("diagnostics serialize");
                println!("{json}");
            }
        }
    }
}

/// Formats each file; with `check`, lists the files that differ instead of writing.
fn fmt(paths: &[PathBuf], check: bool) -> ExitCode {
    let sources = match read(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut unformatted = 0;
    let mut diags = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let formatted = match rules::fmt::format_source(&source.text) {
            Ok(f) => f,
            Err(d) => {
                diags.push((*d).in_file(i));
                continue;
            }
        };
        if formatted == source.text {
            continue;
        }
        unformatted += 1;
        if check {
            println!("{}", source.path.display());
        } else if let Err(e) = std::fs::write(&source.path, formatted) {
            eprintln!("error: {}: {e}", source.path.display());
            return ExitCode::from(2);
        }
    }
    if !diags.is_empty() {
        report(&sources, &diags, Format::Human);
        return ExitCode::from(1);
    }
    if check && unformatted > 0 {
        eprintln!("{unformatted} file(s) not formatted; run `tocsin fmt` on them");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Runs rule unit tests; prints failures as expected-vs-got per alert, as promtool.
fn test(files: &[PathBuf], junit: Option<&std::path::Path>, options: &CheckOptions) -> ExitCode {
    let mut reports = Vec::new();
    for file in files {
        let report = tocsin::ruletest::run_file(file, options);
        println!("Unit testing: {}", file.display());
        if let Some(e) = &report.error {
            println!("  ERROR: {e}");
        }
        for g in &report.groups {
            if g.failures.is_empty() {
                println!("  PASS: {}", g.name);
            } else {
                println!("  FAILED: {}", g.name);
                for f in &g.failures {
                    println!("    {}", f.trim_end().replace('\n', "\n    "));
                }
            }
        }
        reports.push(report);
    }
    let (passed, failed) = reports
        .iter()
        .flat_map(|r| &r.groups)
        .fold((0, 0), |(p, f), g| {
            if g.failures.is_empty() {
                (p + 1, f)
            } else {
                (p, f + 1)
            }
        });
    let errors = reports.iter().filter(|r| r.error.is_some()).count();
    println!("{passed} passed, {} failed", failed + errors);
    if let Some(path) = junit {
        let written = tocsin::ruletest::junit(&reports)
            .and_then(|xml| std::fs::write(path, xml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if failed + errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints Prometheus rule YAML on stdout; rules PromQL cannot express are errors.
fn export_prometheus(paths: &[PathBuf], options: &CheckOptions) -> ExitCode {
    let sources = match read(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let set = match rules::check_sources(&sources, options) {
        Ok(set) => set,
        Err(diags) => {
            report(&sources, &diags, Format::Human);
            return ExitCode::from(1);
        }
    };
    match tocsin::export::prometheus::to_prometheus(&set) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!(
                    "error: {}:{}: alert `{}` cannot be exported: {}",
                    e.origin.path.display(),
                    e.origin.line,
                    e.rule,
                    e.message
                );
            }
            ExitCode::from(1)
        }
    }
}
