//! The web UI in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) with fantoccini. One chromedriver and one browser serve the whole
//! binary (`harness = false`); each scenario starts its own daemon on 127.0.0.1:0
//! with a manual clock, and waits for the page with fantoccini's bounded waits.
//!
//! With `TOCSIN_SCREENSHOTS=DIR` set, each page is also saved as a PNG there
//! (`docs/ui/` holds the ones the README shows).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tocsin::clock::{ManualClock, Timestamp};
use tocsin::config::Config;
use tocsin::server::{Running, start};

mod common;

const RULES: &str = r#"metric cpu_usage gauge ratio
metric unknown_api_calls gauge count

alert "CPU使用率異常" {
  when cpu_usage > 90% for 15m
  severity warning
  annotations {
    summary = "{{ labels.host }} の CPU 使用率が {{ value }} です"
  }
}

alert "異常API呼び出し" {
  when unknown_api_calls > 0
  severity critical
  annotations {
    summary = "{{ labels.host }} で未知の API 呼び出し"
    action = "ボットのログを確認する"
  }
}
"#;

/// A config file with people, a rotation in Tokyo and a policy, as an operator
/// writes one; the test points its listener, store and rules at its own folder.
const CONFIG: &str = r#"
[people.tanaka]
name = "田中"
[people.suzuki]
name = "鈴木"

[schedules.oncall]
people = ["tanaka", "suzuki"]
time_zone = "Asia/Tokyo"
handoff = "09:00"
shift = "7d"
start = "2026-01-05"

[escalation]
default_policy = "default"

[policies.default]
repeat_interval = "30m"

[[policies.default.levels]]
after = "0s"
notify = ["console"]

[[policies.default.levels]]
after = "15m"
notify = ["console"]
"#;

/// 2027-01-15 08:00 UTC (17:00 in Tokyo), a Friday.
const T0: i64 = 1_800_000_000;

/// The browser's time zone: pages must show times in it.
const BROWSER_TZ: &str = "Asia/Tokyo";

/// How long a page may take to show what it should.
const PATIENCE: Duration = Duration::from_secs(10);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver (and through it one headless Chromium) for the whole binary.
async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("TZ", BROWSER_TZ)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromedriver ({e}); these tests need Debian's chromium and \
                 chromium-driver, which `.ci/run` installs"
            )
        });
    let driver = Driver(child);
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=ja-JP"]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen: try for up to 20 s.
    let mut last = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start: {last:?}");
}

struct Daemon {
    running: Running,
    clock: ManualClock,
    base: String,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(name: &str, change: impl FnOnce(&mut Config)) -> Daemon {
        let dir = common::daemon_dir(&format!("web-{name}"), RULES);
        let file = dir.join("tocsin.toml");
        std::fs::write(&file, CONFIG).unwrap();
        let mut config = Config::load(Some(&file)).unwrap();
        let defaults = common::test_config(&dir);
        config.server.listen = defaults.server.listen;
        config.storage = defaults.storage;
        config.rules = defaults.rules;
        change(&mut config);
        let clock = ManualClock::new(Timestamp::from_secs(T0));
        let running = start(config, Arc::new(clock.clone())).await.unwrap();
        Daemon {
            base: format!("http://{}", running.addr),
            running,
            clock,
            http: tocsin::tls::http_client().build().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn push(&self, name: &str, host: &str, value: f64) {
        let body =
            json!({ "samples": [{ "name": name, "labels": { "host": host }, "value": value }] });
        let r = self
            .http
            .post(self.url("/api/v1/samples"))
            .bearer_auth("s3cret-token-for-alice")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    async fn alert(&self, id: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/api/v1/alerts/{id}")))
            .bearer_auth("s3cret-token-for-alice")
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element `css` holds `want` in its text.
async fn wait_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let got = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if got.contains(want) {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} never showed {want:?}; it shows {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let e = c
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("TOCSIN_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.unwrap();
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// An alert fires while the Alerts page is open and appears without a reload; its
/// page shows the annotations in Japanese, times in the browser's zone, and the
/// ack with its note from the button, then unack and resolve, on the timeline.
async fn alert_appears_live_and_is_acked_from_its_page(c: &Client) {
    let d = Daemon::start("live", |_| {}).await;
    c.goto(&d.url("/")).await.unwrap();
    wait_text(c, "#group-firing", "None.").await;
    c.execute("window.stayed = true;", vec![]).await.unwrap();

    d.push("unknown_api_calls", "bot-7", 3.0).await;
    let row = wait_text(c, "#group-firing tr.alert", "異常API呼び出し").await;
    assert!(row.contains("host=bot-7"), "{row}");
    let stayed = c
        .execute("return window.stayed === true;", vec![])
        .await
        .unwrap();
    assert_eq!(stayed, json!(true), "the page was not reloaded");
    screenshot(c, "alerts").await;

    click(c, "#group-firing tr.alert a.rule").await;
    wait_text(c, "h1", "#1 異常API呼び出し").await;
    let annotations = text(c, "dl.annotations").await;
    assert!(
        annotations.contains("bot-7 で未知の API 呼び出し"),
        "{annotations}"
    );
    assert!(
        annotations.contains("ボットのログを確認する"),
        "{annotations}"
    );
    // 08:00 UTC is 17:00 in Tokyo; the UTC instant stays on hover.
    let fired = c.find(Locator::Css("dl.facts time")).await.unwrap();
    let shown = fired.text().await.unwrap();
    assert!(
        shown.contains("05:00:00 PM GMT+9"),
        "shown in the browser's zone: {shown}"
    );
    assert_eq!(
        fired.attr("title").await.unwrap().as_deref(),
        Some("2027-01-15 08:00:00 UTC")
    );

    type_into(c, "#ack input[name=actor]", "山田").await;
    type_into(c, "#ack input[name=note]", "調査中です").await;
    click(c, "#ack button").await;
    let timeline = wait_text(c, "#timeline", "調査中です").await;
    assert!(timeline.contains("山田"), "{timeline}");
    wait_text(c, "h1", "acknowledged").await;
    screenshot(c, "alert").await;
    let api = d.alert("1").await;
    assert_eq!(api["state"], "acknowledged");
    assert_eq!(api["ack"]["actor"], "山田");
    assert_eq!(api["ack"]["via"], "web");

    type_into(c, "#unack input[name=actor]", "山田").await;
    click(c, "#unack button").await;
    wait_text(c, "h1", "firing").await;
    type_into(c, "#resolve input[name=actor]", "佐藤").await;
    type_into(c, "#resolve input[name=note]", "再起動で復旧").await;
    click(c, "#resolve button").await;
    wait_text(c, "h1", "resolved").await;
    let timeline = text(c, "#timeline").await;
    assert!(
        timeline.contains("佐藤") && timeline.contains("再起動で復旧"),
        "{timeline}"
    );
    assert_eq!(d.alert("1").await["state"], "resolved");
    d.running.stop().await;
}

/// "Silence alerts like this" fills the editor; the preview shows the alert it
/// would catch before saving; once saved, the alert moves to suppressed.
async fn a_silence_from_the_editor_suppresses_the_alert(c: &Client) {
    let d = Daemon::start("silence", |_| {}).await;
    d.push("unknown_api_calls", "bot-1", 1.0).await;
    d.push("unknown_api_calls", "bot-2", 1.0).await;
    c.goto(&d.url("/alerts/1")).await.unwrap();
    click(c, "#silence-like-this").await;
    let prefilled = text(c, "textarea[name=matchers]").await;
    assert!(prefilled.contains("host=bot-1"), "{prefilled}");
    let preview = wait_text(c, "#preview", "It would silence 1 open alert(s).").await;
    assert!(
        preview.contains("host=bot-1") && !preview.contains("host=bot-2"),
        "{preview}"
    );

    // Widen it: the preview follows as one types (app.js), before anything is saved.
    type_into(c, "textarea[name=matchers]", "alertname=異常API呼び出し").await;
    wait_text(c, "#preview", "It would silence 2 open alert(s).").await;
    type_into(c, "textarea[name=matchers]", "host=bot-1").await;
    wait_text(c, "#preview", "It would silence 1 open alert(s).").await;
    type_into(c, "input[name=comment]", "bot-1 を再起動中").await;
    type_into(c, "input[name=actor]", "鈴木").await;
    screenshot(c, "silence-editor").await;
    click(c, "#create").await;
    let list = wait_text(c, "#silences", "active").await;
    assert!(
        list.contains("bot-1 を再起動中") && list.contains("鈴木"),
        "{list}"
    );
    screenshot(c, "silences").await;

    c.goto(&d.url("/")).await.unwrap();
    let suppressed = wait_text(c, "#group-suppressed", "host=bot-1").await;
    assert!(!suppressed.contains("host=bot-2"), "{suppressed}");
    wait_text(c, "#group-firing", "host=bot-2").await;

    // Expired from the list: the alert fires again.
    c.goto(&d.url("/silences")).await.unwrap();
    click(c, "#silences form button").await;
    wait_text(c, "#silences", "expired").await;
    assert_eq!(d.alert("1").await["state"], "firing");
    d.running.stop().await;
}

/// The Rules page: each rule's condition as written, file:line, and the `for`
/// progress of a pending alert.
async fn the_rules_page_shows_for_progress(c: &Client) {
    let d = Daemon::start("rules", |_| {}).await;
    d.push("cpu_usage", "bot-3", 0.95).await;
    d.clock.set(Timestamp::from_secs(T0 + 6 * 60));
    d.push("cpu_usage", "bot-3", 0.97).await;
    c.goto(&d.url("/rules")).await.unwrap();
    let rule = text(c, "section.rule[data-rule='CPU使用率異常']").await;
    assert!(rule.contains("cpu_usage > 90% for 15m"), "{rule}");
    assert!(rule.contains("test.rules:4"), "{rule}");
    assert!(rule.contains("pending 1"), "{rule}");
    assert!(rule.contains("6m / 15m"), "{rule}");
    assert!(rule.contains("97%"), "the value in the rule's unit: {rule}");
    assert!(rule.contains("Last evaluated"), "{rule}");
    screenshot(c, "rules").await;
    d.running.stop().await;
}

/// On call (the Tokyo rotation, its next hand-offs in Tokyo time) and Status.
async fn on_call_and_status_pages(c: &Client) {
    let d = Daemon::start("oncall", |_| {}).await;
    c.goto(&d.url("/oncall")).await.unwrap();
    // 2027-01-15 is in week 53 (counting from 0) since 2026-01-05: suzuki's.
    let schedule = text(c, "#schedule-oncall").await;
    assert!(schedule.contains("Now: 鈴木"), "{schedule}");
    assert!(
        schedule.contains("Mon 2027-01-18 09:00 JST 01/18/2027, 09:00:00 AM GMT+9 田中"),
        "{schedule}"
    );
    assert!(
        schedule.contains("Mon 2027-01-25 09:00 JST 01/25/2027, 09:00:00 AM GMT+9 鈴木"),
        "{schedule}"
    );
    assert!(
        !schedule.contains("2027-02-01"),
        "two weeks ahead only: {schedule}"
    );
    let policy = text(c, "#policy-default").await;
    assert!(policy.contains("after 0s: console"), "{policy}");
    screenshot(c, "oncall").await;

    c.goto(&d.url("/status")).await.unwrap();
    let status = text(c, "#status").await;
    assert!(status.contains(env!("CARGO_PKG_VERSION")), "{status}");
    assert!(
        status.contains("tocsin.toml"),
        "the config's source: {status}"
    );
    assert!(status.contains("2 rules"), "{status}");
    assert_eq!(text(c, "#overdue").await, "0");
    let channels = text(c, "#channels").await;
    assert!(channels.contains("console"), "{channels}");
    screenshot(c, "status").await;
    d.running.stop().await;
}

/// With tokens, the UI asks for one and acts as the token's name; a form posted
/// from another site's page (it cannot read our token) changes nothing.
async fn tokens_sign_in_and_cross_site_posts_are_refused(c: &Client) {
    let d = Daemon::start("tokens", |config| {
        config.tokens = vec![
            tocsin::config::Token {
                name: "alice".into(),
                token: tocsin::config::Secret::new("s3cret-token-for-alice"),
                scopes: vec![tocsin::config::Scope::Admin],
            },
            tocsin::config::Token {
                name: "wallboard".into(),
                token: tocsin::config::Secret::new("read-only-token-for-the-wall"),
                scopes: vec![tocsin::config::Scope::Read],
            },
        ];
    })
    .await;
    d.push("unknown_api_calls", "bot-9", 1.0).await;
    c.goto(&d.url("/alerts/1")).await.unwrap();
    type_into(c, "input[name=token]", "wrong").await;
    click(c, "form button").await;
    wait_text(c, "body", "unknown token").await;
    c.goto(&d.url("/alerts/1")).await.unwrap();
    type_into(c, "input[name=token]", "s3cret-token-for-alice").await;
    click(c, "form button").await;
    wait_text(c, "nav", "Signed in as alice").await;
    let cookie = c.get_named_cookie("tocsin_token").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Strict));
    assert!(
        c.find_all(Locator::Css("#ack input[name=actor]"))
            .await
            .unwrap()
            .is_empty(),
        "a signed-in person is not asked their name"
    );

    // Another origin's page posts the ack form at us with the browser's cookie.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let target = d.url("/alerts/1/ack");
    let page = format!(
        r#"<form id="f" method="post" action="{target}"><input name="note" value="pwned"></form>
           <script>document.getElementById("f").submit()</script>"#
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(evil, app).await });
    c.goto(&format!("http://{evil_addr}/")).await.unwrap();
    wait_text(c, "body", "cross-site token").await;
    server.abort();
    assert_eq!(
        d.alert("1").await["state"],
        "firing",
        "the forged ack was refused"
    );

    // The same form from our own page acts, as alice.
    c.goto(&d.url("/alerts/1")).await.unwrap();
    click(c, "#ack button").await;
    wait_text(c, "#timeline", "alice").await;
    assert_eq!(d.alert("1").await["ack"]["actor"], "alice");

    // Without the cross-site token, and with it from a signed-in session's cookie
    // but an attacker's request, the API of the pages refuses.
    let r = d
        .http
        .post(d.url("/alerts/1/unack"))
        .header("cookie", "tocsin_token=s3cret-token-for-alice")
        .form(&[("csrf", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("cross-site"),
        "{body}"
    );

    // A token with the `read` scope only (a wallboard) sees the pages but cannot
    // act through them, as it cannot through the API.
    let wall = "tocsin_token=read-only-token-for-the-wall";
    let r = d
        .http
        .get(d.url("/alerts/1"))
        .header("cookie", wall)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = d
        .http
        .post(d.url("/alerts/1/unack"))
        .header("cookie", wall)
        .form(&[("csrf", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("operate"),
        "{body}"
    );
    assert_eq!(d.alert("1").await["ack"]["actor"], "alice");
    d.running.stop().await;
}

/// A proxy (oauth2-proxy) names the person; only from a trusted address.
async fn a_trusted_proxy_names_the_person(c: &Client) {
    let d = Daemon::start("proxy", |config| {
        config.tokens = vec![tocsin::config::Token {
            name: "alice".into(),
            token: tocsin::config::Secret::new("s3cret-token-for-alice"),
            scopes: vec![tocsin::config::Scope::Admin],
        }];
        config.web.user_header = Some("x-forwarded-user".into());
    })
    .await;
    // From 127.0.0.1, a trusted proxy: the header signs in.
    let page = d
        .http
        .get(d.url("/"))
        .header("x-forwarded-user", "高橋")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Signed in as <b>高橋</b>"), "{page}");
    // The browser sends no header: it is asked for a token.
    c.goto(&d.url("/")).await.unwrap();
    wait_text(c, "h1", "Sign in").await;
    d.running.stop().await;

    // Trusted from elsewhere only: the header from loopback is then ignored.
    let d = Daemon::start("proxy-untrusted", |config| {
        config.tokens = vec![tocsin::config::Token {
            name: "alice".into(),
            token: tocsin::config::Secret::new("s3cret-token-for-alice"),
            scopes: vec![tocsin::config::Scope::Admin],
        }];
        config.web.user_header = Some("x-forwarded-user".into());
        config.web.trusted_proxies = vec!["192.0.2.1".parse().unwrap()];
    })
    .await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(d.url("/"))
        .header("x-forwarded-user", "高橋")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    d.running.stop().await;
}

/// Every page reads with JavaScript off: the alerts are there, the forms post.
async fn pages_read_without_javascript(_: &Client) {
    let d = Daemon::start("nojs", |_| {}).await;
    d.push("unknown_api_calls", "bot-5", 1.0).await;
    let http = &d.http;
    for path in [
        "/",
        "/alerts/1",
        "/silences",
        "/silences/new?matchers=host%3Dbot-5",
        "/oncall",
        "/rules",
        "/status",
    ] {
        let r = http.get(d.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        if path != "/oncall" && path != "/status" {
            assert!(
                html.contains("異常API呼び出し") || path == "/silences",
                "{path}: {html}"
            );
        }
    }
    let page = http
        .get(d.url("/alerts/1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let r = http
        .post(d.url("/alerts/1/ack"))
        .form(&[("csrf", csrf.as_str()), ("actor", "伊藤"), ("note", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "followed the redirect to the alert");
    assert_eq!(d.alert("1").await["ack"]["actor"], "伊藤");
    // Refused before the token is looked at: the browser says it is cross-site.
    let r = http
        .post(d.url("/alerts/1/unack"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    d.running.stop().await;
}

type Scenario = for<'a> fn(&'a Client) -> futures_util::future::BoxFuture<'a, ()>;

macro_rules! scenario {
    ($f:ident) => {
        (stringify!($f), (|c| $f(c).boxed()) as Scenario)
    };
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let scenarios = [
        scenario!(alert_appears_live_and_is_acked_from_its_page),
        scenario!(a_silence_from_the_editor_suppresses_the_alert),
        scenario!(the_rules_page_shows_for_progress),
        scenario!(on_call_and_status_pages),
        scenario!(tokens_sign_in_and_cross_site_posts_are_refused),
        scenario!(a_trusted_proxy_names_the_person),
        scenario!(pages_read_without_javascript),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failed = runtime.block_on(async {
        let (driver, client) = browser().await;
        let mut failed = 0;
        for (name, run) in scenarios {
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            client.delete_all_cookies().await.unwrap();
            let ok = std::panic::AssertUnwindSafe(run(&client))
                .catch_unwind()
                .await
                .is_ok();
            println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
            failed += usize::from(!ok);
        }
        let _ = client.close().await;
        drop(driver);
        failed
    });
    println!("web: {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
