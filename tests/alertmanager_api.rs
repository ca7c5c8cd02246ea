//! Alertmanager's API v2 served by tocsin: every response validated against the
//! schemas of Alertmanager 0.25's own OpenAPI document
//! (`tests/fixtures/alertmanager/openapi-0.25.0.yaml`), tocsin's states read in
//! Alertmanager's terms, and the real `amtool` (Debian's `prometheus-alertmanager`)
//! querying alerts and adding, listing and expiring silences.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use tocsin::clock::SystemClock;
use tocsin::server::{Running, start};

/// A rule that stays pending (its `for` is an hour), for the `unprocessed` state.
const RULES: &str = r#"
alert "SlowDisk" {
  when disk_latency > 1 for 1h
  severity warning
}
"#;

/// The OpenAPI document, as JSON.
fn spec() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager/openapi-0.25.0.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Checks `body` against the schema the spec gives for `status` of `method path`,
/// and returns every violation, each with where it is.
fn violations(spec: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let response = &spec["paths"][path][method]["responses"][status.to_string()];
    let response = match response["$ref"].as_str() {
        // `#/responses/BadRequest`
        Some(r) => &spec["responses"][r.rsplit('/').next().unwrap()],
        None => response,
    };
    let mut schema = response["schema"].clone();
    assert!(
        schema.is_object(),
        "the spec has no schema for {method} {path} {status}"
    );
    schema["definitions"] = spec["definitions"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

struct Tocsin {
    running: Running,
    http: reqwest::Client,
}

impl Tocsin {
    async fn start(name: &str) -> Tocsin {
        let dir = common::daemon_dir(name, RULES);
        let running = start(common::test_config(&dir), Arc::new(SystemClock))
            .await
            .unwrap();
        Tocsin {
            running,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Alerts in every state tocsin maps: firing, acknowledged, silenced, pending.
    async fn with_alerts(name: &str) -> Tocsin {
        let t = Tocsin::start(name).await;
        let alerts = json!([
            { "labels": { "alertname": "DiskFull", "instance": "db1", "severity": "critical" },
              "annotations": { "summary": "disk 95% full on db1" },
              "generatorURL": "http://prometheus:9090/graph?g0.expr=disk" },
            { "labels": { "alertname": "HostDown", "instance": "web1", "severity": "warning" } },
            { "labels": { "alertname": "HostDown", "instance": "web2", "severity": "warning" } },
        ]);
        assert_eq!(t.post("/api/v2/alerts", alerts).await.0, 200);
        let ack = json!({ "actor": "alice", "note": "replacing the disk" });
        let (status, acked) = t.post("/api/v1/alerts/1/ack", ack).await;
        assert_eq!(status, 200, "{acked}");
        assert_eq!(acked["labels"]["instance"], "db1");
        let silence = json!({ "matchers": [{ "name": "instance", "value": "web2" }],
                              "duration": "1h", "comment": "reboot" });
        assert_eq!(t.post("/api/v1/silences", silence).await.0, 201);
        let samples = json!({ "samples": [{ "name": "disk_latency", "labels": { "host": "a" }, "value": 5 }] });
        assert_eq!(t.post("/api/v1/samples", samples).await.0, 200);
        t
    }
}

#[tokio::test]
async fn every_response_follows_alertmanagers_schemas() {
    let t = Tocsin::with_alerts("am-api-schemas").await;
    let spec = spec();
    let (_, silences) = t.get("/api/v2/silences").await;
    let silence_id = silences[0]["id"].as_str().unwrap().to_string();
    let reads = [
        ("/status", "/api/v2/status".to_string()),
        ("/receivers", "/api/v2/receivers".into()),
        ("/alerts", "/api/v2/alerts".into()),
        (
            "/alerts",
            "/api/v2/alerts?active=false&filter=alertname%3D~%22Host.*%22".into(),
        ),
        ("/alerts/groups", "/api/v2/alerts/groups".into()),
        ("/silences", "/api/v2/silences".into()),
        (
            "/silence/{silenceID}",
            format!("/api/v2/silence/{silence_id}"),
        ),
    ];
    for (path, url) in reads {
        let (status, body) = t.get(&url).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        let bad = violations(&spec, "get", path, 200, &body);
        assert!(
            bad.is_empty(),
            "GET {url} breaks the spec: {bad:#?}\n{body:#}"
        );
    }
    // A silence posted in the spec's own shape, and its answer.
    let posted = json!({
        "matchers": [{ "name": "alertname", "value": "Disk.*", "isRegex": true }],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00.000Z",
        "createdBy": "bob", "comment": "disks are being replaced",
    });
    let (status, body) = t.post("/api/v2/silences", posted).await;
    assert_eq!(status, 200, "{body}");
    assert!(violations(&spec, "post", "/silences", 200, &body).is_empty());
    // A refusal is the spec's BadRequest: a JSON string saying why.
    let (status, body) = t.get("/api/v2/alerts?filter=%3Dbroken").await;
    assert_eq!(status, 400);
    assert!(
        violations(&spec, "get", "/alerts", 400, &body).is_empty(),
        "{body}"
    );
    assert!(body.as_str().unwrap().contains("=broken"), "{body}");
    // The check is not vacuous: an alert without `updatedAt` or with a state
    // Alertmanager does not have is refused.
    let (_, mut alerts) = t.get("/api/v2/alerts").await;
    alerts[0].as_object_mut().unwrap().remove("updatedAt");
    alerts[1]["status"]["state"] = json!("acknowledged");
    assert_eq!(violations(&spec, "get", "/alerts", 200, &alerts).len(), 2);
    t.running.stop().await;
}

/// An alert by its `alertname` and `instance`.
fn find<'a>(alerts: &'a Value, name: &str, instance: &str) -> &'a Value {
    alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["instance"] == instance)
        .unwrap_or_else(|| panic!("no {name} {instance} in {alerts:#}"))
}

#[tokio::test]
async fn states_read_as_alertmanagers_and_an_ack_shows() {
    let t = Tocsin::with_alerts("am-api-states").await;
    let (_, alerts) = t.get("/api/v2/alerts").await;
    assert_eq!(alerts.as_array().unwrap().len(), 4, "{alerts:#}");
    let firing = find(&alerts, "HostDown", "web1");
    assert_eq!(firing["status"]["state"], "active");
    assert_eq!(firing["receivers"], json!([{ "name": "default" }]));
    assert_eq!(firing["annotations"]["tocsin_state"], "firing");
    let acked = find(&alerts, "DiskFull", "db1");
    assert_eq!(acked["status"]["state"], "suppressed");
    assert_eq!(acked["status"]["silencedBy"], json!([]));
    assert_eq!(acked["annotations"]["tocsin_acknowledged_by"], "alice");
    assert_eq!(
        acked["annotations"]["tocsin_ack_note"],
        "replacing the disk"
    );
    assert_eq!(acked["annotations"]["summary"], "disk 95% full on db1");
    assert_eq!(
        acked["generatorURL"],
        "http://prometheus:9090/graph?g0.expr=disk"
    );
    let silenced = find(&alerts, "HostDown", "web2");
    let (_, silences) = t.get("/api/v2/silences").await;
    assert_eq!(silenced["status"]["state"], "suppressed");
    assert_eq!(silenced["status"]["silencedBy"], json!([silences[0]["id"]]));
    let pending = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "SlowDisk")
        .unwrap();
    assert_eq!(pending["status"]["state"], "unprocessed");
    // Alertmanager's filters: only what pages now; and not silenced.
    let names = |alerts: &Value| -> Vec<String> {
        let mut n: Vec<String> = alerts
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["labels"]["alertname"].as_str().unwrap(),
                    a["labels"]["instance"].as_str().unwrap_or("-")
                )
            })
            .collect();
        n.sort();
        n
    };
    let query = "/api/v2/alerts?silenced=false&inhibited=false&unprocessed=false&active=true";
    let (_, shown) = t.get(query).await;
    assert_eq!(names(&shown), ["DiskFull/db1", "HostDown/web1"]);
    let (_, shown) = t.get("/api/v2/alerts?active=false&unprocessed=false").await;
    assert_eq!(names(&shown), ["DiskFull/db1", "HostDown/web2"]);
    let (_, shown) = t
        .get("/api/v2/alerts?receiver=def.*&filter=instance%21%3D%22web1%22")
        .await;
    assert_eq!(
        names(&shown),
        ["DiskFull/db1", "HostDown/web2", "SlowDisk/-"]
    );
    let (_, shown) = t.get("/api/v2/alerts?receiver=other").await;
    assert_eq!(names(&shown), Vec::<String>::new());
    // Groups follow `group_by` (alertname by default).
    let (_, groups) = t.get("/api/v2/alerts/groups").await;
    let sizes: Vec<(String, usize)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let name = g["labels"]["alertname"].as_str().unwrap().to_string();
            (name, g["alerts"].as_array().unwrap().len())
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("DiskFull".to_string(), 1),
            ("HostDown".to_string(), 2),
            ("SlowDisk".to_string(), 1)
        ]
    );
    t.running.stop().await;
}

#[tokio::test]
async fn a_silence_is_the_same_object_through_both_apis() {
    let t = Tocsin::start("am-api-silences").await;
    let posted = json!({
        "matchers": [{ "name": "instance", "value": "db1", "isRegex": false }],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "bob", "comment": "moving racks",
    });
    let (status, body) = t.post("/api/v2/silences", posted.clone()).await;
    assert_eq!(status, 200, "{body}");
    let id = body["silenceID"].as_str().unwrap().to_string();
    let (_, v1) = t.get("/api/v1/silences").await;
    let stored = &v1["silences"][0];
    assert_eq!(stored["id"], id);
    assert_eq!(stored["created_by"], "bob");
    assert_eq!(stored["status"], "active");
    assert_eq!(
        stored["matchers"],
        json!([{ "name": "instance", "op": "=", "value": "db1" }])
    );
    // A change to its end is made in place, under the same id.
    let (_, current) = t.get(&format!("/api/v2/silence/{id}")).await;
    let mut changed = posted.clone();
    changed["id"] = json!(id);
    changed["startsAt"] = current["startsAt"].clone();
    changed["endsAt"] = json!("2098-01-01T00:00:00Z");
    let (_, body) = t.post("/api/v2/silences", changed).await;
    assert_eq!(body["silenceID"], id);
    // A change to its matchers expires it and makes a new one.
    let mut other = posted.clone();
    other["id"] = json!(id);
    other["matchers"][0]["value"] = json!("db2");
    let (_, body) = t.post("/api/v2/silences", other).await;
    let new_id = body["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = t.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(old["status"]["state"], "expired");
    // Expired through v2, expired in v1.
    let r = t
        .http
        .delete(t.url(&format!("/api/v2/silence/{new_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v1) = t.get("/api/v1/silences").await;
    let statuses: Vec<&str> = v1["silences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "expired"]);
    // Refused whole, with the reason: no comment, an end in the past, an unknown id.
    let mut bad = posted.clone();
    bad["comment"] = json!("");
    let (status, body) = t.post("/api/v2/silences", bad).await;
    assert_eq!((status, body), (400, json!("comment in body is required")));
    let mut bad = posted.clone();
    bad["endsAt"] = json!("2021-01-01T00:00:00Z");
    let (status, _) = t.post("/api/v2/silences", bad).await;
    assert_eq!(status, 400);
    let mut bad = posted.clone();
    bad["id"] = json!("4c4c5cf4-0000-0000-0000-000000000000");
    let (status, _) = t.post("/api/v2/silences", bad).await;
    assert_eq!(status, 404);
    t.running.stop().await;
}

/// Runs Debian's `amtool` against `url`; its stdout, or a failure with its stderr.
fn amtool(url: &str, args: &[&str]) -> String {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run amtool ({e}); CI installs it via `.ci/run` (Debian package prometheus-alertmanager)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "amtool {args:?} failed: {stderr}");
    // amtool warns when the version it talks to is not its own.
    assert!(!stderr.contains("Warning"), "amtool {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

// amtool runs blocking in the test's thread: the server needs another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_queries_alerts_and_manages_silences() {
    let t = Tocsin::with_alerts("am-api-amtool").await;
    let url = t.url("");
    // Only what pages (amtool's default: active, not silenced): the firing alert
    // and the acknowledged one (suppressed, but by no silence).
    let listed = amtool(&url, &["alert", "query", "-o", "simple"]);
    assert!(listed.contains("HostDown"), "{listed}");
    assert!(listed.contains("DiskFull"), "{listed}");
    let with = amtool(&url, &["alert", "query", "-o", "extended", "instance=web1"]);
    assert!(with.contains(r#"instance="web1""#), "{with}");
    assert!(!with.contains(r#"instance="web2""#), "{with}");
    let silenced = amtool(
        &url,
        &[
            "alert",
            "query",
            "-s",
            "-o",
            "extended",
            "alertname=HostDown",
        ],
    );
    assert!(silenced.contains(r#"instance="web2""#), "{silenced}");
    let regex = amtool(
        &url,
        &["alert", "query", "-o", "extended", "alertname=~Disk.+"],
    );
    assert!(
        regex.contains("tocsin_acknowledged_by=\"alice\""),
        "{regex}"
    );

    let id = amtool(
        &url,
        &[
            "silence",
            "add",
            "instance=web1",
            "--comment=kernel update",
            "--author=carol",
            "--duration=2h",
        ],
    );
    let id = id.trim();
    let (_, v1) = t.get("/api/v1/silences").await;
    assert!(
        v1["silences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id
                && s["created_by"] == "carol"
                && s["comment"] == "kernel update"),
        "{v1:#}"
    );
    let (_, web1) = t.get("/api/v1/alerts?label=instance=web1").await;
    assert_eq!(web1["alerts"][0]["state"], "suppressed");
    let queried = amtool(&url, &["silence", "query", "-q", "instance=web1"]);
    assert_eq!(queried.trim(), id);
    amtool(&url, &["silence", "expire", id]);
    let expired = amtool(
        &url,
        &["silence", "query", "--expired", "-q", "instance=web1"],
    );
    assert_eq!(expired.trim(), id);
    assert_eq!(
        amtool(&url, &["silence", "query", "-q", "instance=web1"]).trim(),
        ""
    );
    let (_, web1) = t.get("/api/v1/alerts?label=instance=web1").await;
    assert_eq!(web1["alerts"][0]["state"], "firing", "the silence ended");
    t.running.stop().await;
}

#[test]
fn amtool_check_config_is_unaffected_by_a_tocsin_receiver() {
    let dir = common::daemon_dir("am-api-check-config", "");
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: tocsin\nreceivers:\n  - name: tocsin\n    webhook_configs:\n      - url: http://127.0.0.1:9095/api/v1/alertmanager\n        send_resolved: true\n",
    )
    .unwrap();
    let out = Command::new("amtool")
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .expect("amtool on PATH (.ci/run installs prometheus-alertmanager)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS"));
}
