//! One throwaway PostgreSQL cluster per test binary, on 127.0.0.1, and a fresh
//! database per test. Debian's server binaries (`/usr/lib/postgresql/*/bin`,
//! installed by `.ci/run`) run as the `postgres` user when the tests run as root:
//! PostgreSQL refuses root. A guard process stops the cluster and removes its
//! folder when the test binary exits, however it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// Commits are synced to disk (`fsync=on`), as on a production server; the
    /// tests' cluster does without.
    durable: bool,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A new, empty database on the cluster, and its URL.
pub fn fresh_database(name: &str) -> String {
    let cluster = cluster();
    let db = format!(
        "{}_{}",
        name.to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        DATABASES.fetch_add(1, Ordering::SeqCst)
    );
    cluster.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
    cluster.url(&db)
}

/// With `TOCSIN_TEST_STORE=postgres`, the URL of the database of a test's folder
/// (the same one each time it is asked, so a restarted daemon finds its state).
pub fn for_dir(dir: &Path) -> Option<String> {
    static BY_DIR: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());
    if std::env::var("TOCSIN_TEST_STORE").ok()? != "postgres" {
        return None;
    }
    let mut known = BY_DIR.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, url)) = known.iter().find(|(d, _)| d == dir) {
        return Some(url.clone());
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("test");
    let url = fresh_database(&name.chars().take(40).collect::<String>());
    known.push((dir.to_path_buf(), url.clone()));
    Some(url)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A cluster of its own that syncs its commits as a production server does, for
/// measurements (the load harness); stopped when the process exits.
pub fn durable() -> Cluster {
    Cluster::init(true)
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::init(false)
    }

    fn init(durable: bool) -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .filter(|p| p.join("pg_ctl").exists())
                    .max()
            })
            .expect(
                "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/pg_ctl); \
                 CI installs it in `.ci/run` (Debian package `postgresql`)",
            );
        let dir = std::env::temp_dir().join(format!(
            "tocsin-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres {}", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            bin,
            dir,
            port,
            durable,
        };
        cluster.as_owner(
            "initdb",
            &[
                "-D",
                cluster.data().to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "tocsin",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster.guard();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://` URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://tocsin@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs a server binary as the owner of the cluster (`postgres` under root).
    fn as_owner(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            self.port,
            self.dir.display(),
            if self.durable { "on" } else { "off" }
        );
        let log = self.dir.join("server.log");
        self.as_owner(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server at once (`immediate`: as a crash, every connection dropped).
    pub fn stop_server(&self) {
        self.as_owner(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Runs one SQL statement on `db` with psql, and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A process that waits for this test binary to exit, then stops the cluster and
    /// removes its folder. Its loop ends by itself when the binary is gone.
    // Never waited for: it must outlive this process (init reaps it).
    #[allow(clippy::zombie_processes)]
    fn guard(&self) {
        let stop = format!(
            "{} {} -D {} -m immediate stop",
            if is_root() {
                "runuser -u postgres --"
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            parent = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("setsid")
            .args(["bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's guard");
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
