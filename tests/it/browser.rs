//! The dashboard in a real browser: Debian's headless Chromium, driven through
//! chromedriver, against a real hub. One browser session walks the whole human path, so
//! the suite pays for one browser start.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install -y chromium chromium-driver`);
//! without them this test fails and says so. Set `HOOKHUB_SCREENSHOTS=<dir>` to keep a
//! screenshot of each main page as `<dir>/dash-<page>.png`.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::harness::{create_owner, senders::github_push, spawn_app, spawn_app_with};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long anything the page should show may take to show.
const PATIENCE: Duration = Duration::from_secs(15);

// ---- chromedriver and the browser -----------------------------------------------------

/// A chromedriver process on a free port, stopped (with its browsers) on drop.
struct Chromedriver {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Chromedriver {
    fn start(dir: tempfile::TempDir) -> Self {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "the browser tests need Debian's Chromium and its WebDriver: {path} is missing \
                 (package `{package}`). Install them with \
                 `apt-get update && apt-get install -y chromium chromium-driver`."
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver close its browsers too; a kill would orphan them.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(
                b"GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            );
            let _ = s.read(&mut [0u8; 256]);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser session, with the waiting helpers a test of a live page needs.
struct Browser {
    client: Client,
    base: String,
    shots: Option<PathBuf>,
    // Dropped last: it takes the browser down with it.
    _driver: Chromedriver,
}

impl Browser {
    async fn start(base: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let driver = Chromedriver::start(dir);
        // The network is closed and the test runs as root: no sandbox, no background
        // fetches, a fresh profile, a laptop-sized window.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1366,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let caps = caps.as_object().unwrap().clone();
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            base: base.to_owned(),
            shots: std::env::var_os("HOOKHUB_SCREENSHOTS").map(PathBuf::from),
            _driver: driver,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{}", self.base, path))
            .await
            .unwrap();
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    // The dashboard re-renders its lists as data arrives, so an element found a moment ago
    // may be replaced before it is used. Each of these finds it again then, until PATIENCE.

    async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.click().await {
                Ok(_) => return,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("clicking `{css}`: {e}"),
            }
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let input = self.find(css).await;
            let filled = match input.clear().await {
                Ok(()) => input.send_keys(text).await,
                Err(e) => Err(e),
            };
            match filled {
                Ok(()) => return,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("filling `{css}`: {e}"),
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("reading `{css}`: {e}"),
            }
        }
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.attr(name).await {
                Ok(value) => return value,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("reading `{name}` of `{css}`: {e}"),
            }
        }
    }

    async fn value(&self, css: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(css).await.prop("value").await {
                Ok(value) => return value.unwrap_or_default(),
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("reading the value of `{css}`: {e}"),
            }
        }
    }

    async fn js(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap()
    }

    /// Waits until a JavaScript expression is truthy on the page.
    async fn until(&self, what: &str, expr: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Not there yet is false, not an error: the page may be mid-render.
            let probe = format!(
                "(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()"
            );
            if self.js(&probe).await == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "the page never showed {what}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("dash-{name}.png")), png).unwrap();
        }
    }

    /// Sizes the window so the page itself (not the browser's frame) is `width`×`height`.
    async fn viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self.js("[window.innerWidth, window.innerHeight]").await;
        let frame_w = width - inner[0].as_u64().unwrap() as u32;
        let frame_h = height - inner[1].as_u64().unwrap() as u32;
        self.client
            .set_window_size(width + frame_w, height + frame_h)
            .await
            .unwrap();
        self.until(
            "the new window size",
            &format!("window.innerWidth === {width} && window.innerHeight === {height}"),
        )
        .await;
    }

    /// Whether every header cell of a table is within its card, that is, every column is
    /// in view without scrolling.
    async fn all_columns_in_view(&self, table_css: &str) -> bool {
        self.js(&format!(
            "(() => {{
                const t = document.querySelector({sel});
                const card = t.closest('.card').getBoundingClientRect();
                return [...t.querySelectorAll('thead th')].every((th) => {{
                    const r = th.getBoundingClientRect();
                    return r.width > 0 && r.left >= card.left - 1 && r.right <= card.right + 1;
                }});
            }})()",
            sel = css_str(table_css)
        ))
        .await
            == json!(true)
    }

    /// Whether an element shows only part of its text on one line (the rest elided).
    async fn truncated(&self, css: &str) -> bool {
        self.js(&format!(
            "(() => {{ const e = document.querySelector({}); return e.scrollWidth > e.clientWidth && e.getClientRects().length === 1; }})()",
            css_str(css)
        ))
        .await
            == json!(true)
    }

    /// The tallest row of a table, in CSS pixels.
    async fn tallest_row(&self, table_css: &str) -> f64 {
        self.js(&format!(
            "Math.max(...[...document.querySelectorAll({sel})].map((tr) => tr.getBoundingClientRect().height))",
            sel = css_str(&format!("{table_css} tbody tr"))
        ))
        .await
        .as_f64()
        .unwrap()
    }

    async fn sign_in(&self, token: &str) {
        self.fill("#token", token).await;
        self.click("#sign-in-submit").await;
        self.find("#account:not([hidden])").await;
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.find("#sign-in-form").await;
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

fn css_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

// ---- The human path -------------------------------------------------------------------

#[actix_web::test]
async fn an_owner_manages_agents_and_webhooks_and_watches_activity_live() {
    let app = spawn_app().await;
    let b = Browser::start(&app.base).await;

    // Signing in: a wrong token is refused in the page, the owner token lets one in.
    b.goto("/").await;
    b.find("#sign-in-form").await;
    // Without a session cookie the form shows without a question to the hub first.
    assert_eq!(
        b.js("performance.getEntriesByType('resource').filter((e) => e.name.includes('/dashboard/session')).length")
            .await,
        json!(0)
    );
    b.shot("signin").await;
    b.fill("#token", "hh_owner_not-a-real-token").await;
    b.click("#sign-in-submit").await;
    b.until(
        "the sign-in error",
        "document.querySelector('#sign-in-error').textContent.includes('not a valid owner token')",
    )
    .await;
    b.sign_in(&app.owner_token).await;
    assert_eq!(b.text("#account-name").await, "owner");
    b.find("#agents-empty").await;

    // A refused name is said plainly, and its input marked.
    b.fill("#agent-name", "   ").await;
    b.click("#create-agent").await;
    b.until(
        "the error banner",
        "!document.querySelector('#error').hidden",
    )
    .await;
    assert_eq!(b.text("#error").await, "Name must not be empty.");
    b.find(r#"#agent-name[aria-invalid="true"]"#).await;

    // An agent, and its token shown once.
    b.fill("#agent-name", "triage-bot").await;
    b.click("#create-agent").await;
    let agent_token = b.value("#agent-token").await;
    assert!(agent_token.starts_with("hh_agent_"), "{agent_token}");
    assert!(b
        .find("#error")
        .await
        .attr("hidden")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        b.js("document.querySelector('#agent-name').hasAttribute('aria-invalid')")
            .await,
        json!(false)
    );
    assert!(b
        .text("#agent-token-panel-warning")
        .await
        .contains("cannot be shown again"));
    b.shot("agent-created").await;
    let agent_id = b
        .attr("#agents-table tbody tr", "data-agent-id")
        .await
        .unwrap();
    assert_eq!(b.text("#agents-table .agent-link").await, "triage-bot");
    assert_eq!(b.text("#agents-table .backlog").await, "0");
    assert!(b.text("#agents-table tbody tr").await.contains("offline"));

    // The token the page showed is the agent's: it connects with it, and shows online.
    let mut socket = app.connect(&agent_token).await;
    b.client.refresh().await.unwrap();
    b.until(
        "the agent online",
        "document.querySelector('#agents-table .badge.online')",
    )
    .await;
    assert!(
        !b.client.source().await.unwrap().contains(&agent_token),
        "the agent token is shown only once"
    );
    b.shot("agents").await;

    // A webhook: URL and signing secret shown once, with the provider's setup steps.
    b.click("#agents-table .agent-link").await;
    b.find("#webhooks-empty").await;
    b.fill("#webhook-name", "GitHub pushes").await;
    b.find("#webhook-provider")
        .await
        .select_by_value("github")
        .await
        .unwrap();
    b.click("#create-webhook").await;
    let secret = b.value("#signing-secret").await;
    let url = b.value("#webhook-url").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let webhook_id = url
        .strip_prefix(&format!("{}/v1/hooks/", app.base))
        .unwrap_or_else(|| panic!("unexpected URL {url}"))
        .to_owned();
    assert!(webhook_id.starts_with("whk_"));
    assert!(b
        .text("#secret-panel-warning")
        .await
        .contains("will not be shown again"));
    assert!(b
        .find("#signing-secret-copy")
        .await
        .is_displayed()
        .await
        .unwrap());
    let steps = b.text("#setup-steps").await;
    assert!(
        steps.contains("Payload URL") && steps.contains("Secret"),
        "{steps}"
    );
    // The test hub's URLs are on 127.0.0.1, which no provider can reach: the page says so.
    let reach = b.text("#webhook-url-unreachable").await;
    assert!(
        reach.contains("cannot reach 127.0.0.1") && reach.contains("--public-url"),
        "{reach}"
    );
    b.shot("webhook-created").await;

    // Gone after a reload.
    b.client.refresh().await.unwrap();
    b.find(&format!("tr[data-webhook-id={}]", css_str(&webhook_id)))
        .await;
    assert!(
        !b.client.source().await.unwrap().contains(&secret),
        "the signing secret is shown only once"
    );
    assert!(b
        .js("document.querySelector('#secret-panel')")
        .await
        .is_null());
    b.shot("agent").await;

    // Activity: a delivery appears live, without a reload, and turns acked live too.
    b.click(".webhook-link").await;
    b.find("#deliveries-empty").await;
    assert!(b
        .text("#url-unreachable")
        .await
        .contains("HOOKHUB_PUBLIC_URL"));
    b.until(
        "the live indicator",
        "document.querySelector('#live').textContent === 'Live'",
    )
    .await;
    let payload = r#"{"ref":"refs/heads/main","note":"<img src=x onerror=alert(1)>"}"#;
    let r = github_push(&app, &webhook_id, &secret, payload).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let delivery_id = r.json["deliveryId"].as_str().unwrap().to_owned();
    let row_css = format!("tr[data-delivery-id={}]", css_str(&delivery_id));
    b.find(&row_css).await;
    let frame = socket.next_delivery(10).await;
    assert_eq!(frame["deliveryId"], delivery_id.as_str());
    socket.ack(&delivery_id).await;
    b.until(
        "the delivery acked",
        &format!("document.querySelector('{row_css}[data-status=\"acked\"]')"),
    )
    .await;
    let row_text = b.text(&row_css).await;
    assert!(row_text.contains("acked"), "{row_text}");
    assert!(
        row_text.contains(&format!("{} B", payload.len())),
        "{row_text}"
    );
    b.shot("activity").await;

    // Its headers and body, on demand, shown as text.
    b.click(&row_css).await;
    b.find("#delivery-detail").await;
    let headers = b.text("#detail-headers").await;
    assert!(headers.contains("x-github-event"), "{headers}");
    let body = b.text("#detail-body").await;
    assert!(body.contains("<img src=x onerror=alert(1)>"), "{body}");
    assert!(b
        .js("document.querySelector('#detail-body img')")
        .await
        .is_null());
    b.shot("delivery").await;

    // Redeliver: the agent gets it again.
    b.click("#redeliver").await;
    b.until(
        "the redeliver confirmation",
        "document.querySelector('#redeliver-result').textContent.includes('Queued')",
    )
    .await;
    let again = socket.next_delivery(10).await;
    assert_eq!(again["deliveryId"], delivery_id.as_str());
    socket.ack(&delivery_id).await;
    // The open detail follows the delivery live.
    b.find(r#"#delivery-detail[data-status="acked"][data-attempts="2"]"#)
        .await;
    assert!(b.text("#redeliver-result").await.contains("Queued"));

    // Filtering by status.
    b.find("#status-filter")
        .await
        .select_by_value("expired")
        .await
        .unwrap();
    b.until(
        "the filtered empty state",
        "document.querySelector('#deliveries-empty h2').textContent === 'No expired deliveries'",
    )
    .await;
    // The filter is in the address: a reload keeps it.
    b.client.refresh().await.unwrap();
    b.until(
        "the filtered empty state after a reload",
        "document.querySelector('#deliveries-empty h2').textContent === 'No expired deliveries'",
    )
    .await;
    assert_eq!(b.value("#status-filter").await, "expired");
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .ends_with("?status=expired"));
    b.find("#status-filter")
        .await
        .select_by_value("acked")
        .await
        .unwrap();
    b.find(&format!("{row_css}[data-status=\"acked\"]")).await;
    b.find("#status-filter")
        .await
        .select_by_value("")
        .await
        .unwrap();
    b.until(
        "the filter gone from the address",
        "!location.hash.includes('status')",
    )
    .await;

    // Rotate: a new secret, shown once, that the hub accepts.
    b.click("#rotate").await;
    b.click("#confirm-ok").await;
    let rotated = b.value("#rotated-secret").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    b.shot("rotated").await;
    assert!(b
        .text("#rotated-panel-warning")
        .await
        .contains("will not be shown again"));
    let r = github_push(&app, &webhook_id, &rotated, r#"{"after":"rotation"}"#).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let second = r.json["deliveryId"].as_str().unwrap().to_owned();
    b.find(&format!("tr[data-delivery-id={}]", css_str(&second)))
        .await;
    let frame = socket.next_delivery(10).await;
    assert_eq!(frame["deliveryId"], second.as_str());
    socket.ack(&second).await;

    // Deactivate, after a confirmation that can be declined.
    b.click("#deactivate").await;
    b.click("#confirm-cancel").await;
    assert!(b.find("#deactivate").await.is_displayed().await.unwrap());
    b.click("#deactivate").await;
    assert!(b.text("#confirm-dialog").await.contains("GitHub pushes"));
    b.click("#confirm-ok").await;
    b.find("#webhook-head .badge.inactive").await;
    b.shot("deactivated").await;
    let r = github_push(&app, &webhook_id, &rotated, r#"{"after":"deactivation"}"#).await;
    assert_eq!(r.status, 404, "{:?}", r.json);

    // A Stripe webhook takes the secret Stripe issued.
    b.click(&format!(".crumbs a[href=\"#/agents/{agent_id}\"]"))
        .await;
    b.fill("#webhook-name", "Stripe payments").await;
    b.find("#webhook-provider")
        .await
        .select_by_value("stripe")
        .await
        .unwrap();
    b.click("#create-webhook").await;
    assert!(b.text("#setup-steps").await.contains("Provider secret"));
    b.click("#open-created").await;
    assert!(b
        .text("#provider-secret-state")
        .await
        .starts_with("Not set — deliveries are accepted unverified"));
    b.fill("#provider-secret", "whsec_from_stripe_dashboard")
        .await;
    b.click("#save-provider-secret").await;
    b.until(
        "the provider secret saved",
        "document.querySelector('#notice').textContent.includes('secret saved')",
    )
    .await;
    // Said at once, and still so when the page is loaded again.
    assert_eq!(
        b.text("#provider-secret-state").await,
        "Set — inbound requests are verified."
    );
    b.client.refresh().await.unwrap();
    b.until(
        "the provider secret still set",
        "document.querySelector('#provider-secret-state').textContent.startsWith('Set')",
    )
    .await;

    // Names and payloads are strangers' text: shown as text, never run.
    b.click(&format!(".crumbs a[href=\"#/agents/{agent_id}\"]"))
        .await;
    let hostile = "<script>alert(1)</script>";
    b.fill("#webhook-name", hostile).await;
    b.click("#create-webhook").await;
    b.find("#secret-panel").await;
    b.until(
        "the hostile name as a link",
        &format!(
            "[...document.querySelectorAll('.webhook-link')].some(a => a.textContent === {})",
            css_str(hostile)
        ),
    )
    .await;
    assert_eq!(
        b.js("document.querySelectorAll('script').length").await,
        json!(1)
    );
    assert!(
        b.client.get_alert_text().await.is_err(),
        "no alert may have opened"
    );
    b.shot("webhooks").await;

    // Signing out ends the session; the pages ask to sign in again.
    b.sign_out().await;
    b.goto(&format!("/#/agents/{agent_id}")).await;
    b.find("#sign-in-form").await;

    // A second owner sees none of the first owner's agents, even by their address (the
    // page still asks for the first owner's agent when they sign in).
    let second_token = create_owner(&app, "second owner").await;
    b.sign_in(&second_token).await;
    assert_eq!(b.text("#account-name").await, "second owner");
    b.find("#not-found").await;
    b.goto("/#/").await;
    b.find("#agents-empty").await;
    b.shot("second-owner").await;
    b.goto(&format!("/#/agents/{agent_id}/webhooks/{webhook_id}"))
        .await;
    b.find("#not-found").await;
    assert!(!b.client.source().await.unwrap().contains("triage-bot"));

    b.close().await;
}

// ---- Laptop layout --------------------------------------------------------------------

/// A name as long as names may be (200 characters), with no place to break a line.
fn longest_name(prefix: &str) -> String {
    let mut name = prefix.to_owned();
    while name.chars().count() < 200 {
        name.push_str("-very-long-name");
    }
    name.chars().take(200).collect()
}

#[actix_web::test]
async fn long_names_and_an_open_delivery_keep_every_column_in_view_on_a_laptop() {
    // Behind a public address, as a hub providers can reach would be.
    let app = spawn_app_with(|cfg| cfg.public_url = Some("https://hooks.example.com".into())).await;
    let long_agent = longest_name("agent");
    let long_webhook = longest_name("webhook");
    let (agent_id, agent_token) = app.create_agent(&long_agent).await;
    app.create_agent("short-name").await;
    let webhook = app
        .create_webhook(&app.owner_token, &agent_id, &long_webhook, "stripe")
        .await;
    let webhook_id = webhook["webhookId"].as_str().unwrap().to_owned();
    app.create_webhook(&app.owner_token, &agent_id, "orders", "generic")
        .await;

    // Activity: events delivered and acked, then one queued for the agent, now offline.
    let stripe_event = |event: &str| {
        let id = format!("evt_{}", ulid::Ulid::new());
        json!({ "id": id, "object": "event", "type": event, "data": { "object": {} } }).to_string()
    };
    let mut socket = app.connect(&agent_token).await;
    let events = [
        "customer.subscription.updated",
        "invoice.paid",
        "payment_intent.succeeded",
        "order.created",
    ];
    let mut opened = String::new();
    for event in events {
        let r = app
            .ingest(
                &webhook_id,
                stripe_event(event),
                &[("content-type", "application/json")],
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.json);
        let frame = socket.next_delivery(10).await;
        let id = frame["deliveryId"].as_str().unwrap().to_owned();
        socket.ack(&id).await;
        if event == events[0] {
            opened = id;
        }
    }
    socket.close().await;
    let r = app
        .ingest(
            &webhook_id,
            stripe_event("charge.refunded"),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);

    let b = Browser::start(&app.base).await;
    b.viewport(1366, 850).await;
    b.goto("/").await;
    b.sign_in(&app.owner_token).await;

    // The agents page: the long name is cut to one line, every column stays in view.
    let link = format!(".agent-link[title={}]", css_str(&long_agent));
    b.find(&link).await;
    b.shot("layout-agents").await;
    assert!(b.all_columns_in_view("#agents-table").await);
    assert!(b.tallest_row("#agents-table").await < 80.0);
    assert!(b.truncated(&link).await);

    // The agent's page: the same for a long webhook name.
    b.click(&link).await;
    let link = format!(".webhook-link[title={}]", css_str(&long_webhook));
    b.find(&link).await;
    // The agent is offline: its backlog is queued, not waiting for an ack.
    assert_eq!(b.text("#agent-backlog").await, "1 delivery pending");
    b.shot("layout-agent").await;
    assert!(b.all_columns_in_view("#webhooks-table").await);
    assert!(b.tallest_row("#webhooks-table").await < 80.0);
    assert!(b.truncated(&link).await);

    // The webhook's activity with a delivery's detail open: every column in view, and
    // every event name whole on one line.
    b.click(&link).await;
    let row_css = format!("tr[data-delivery-id={}]", css_str(&opened));
    b.click(&row_css).await;
    b.find("#delivery-detail").await;
    // A public URL needs no warning.
    assert!(b
        .js("document.querySelector('#url-unreachable')")
        .await
        .is_null());
    for (width, height) in [(1366, 850), (1280, 720), (1024, 768)] {
        b.viewport(width, height).await;
        b.shot(&format!("layout-activity-{width}")).await;
        assert!(
            b.all_columns_in_view("#deliveries-table").await,
            "at {width}×{height}"
        );
        assert_eq!(
            b.js(
                "[...document.querySelectorAll('#deliveries-table td.event > span')]
                .filter((e) => e.getClientRects().length === 1 && e.scrollWidth <= e.clientWidth)
                .length"
            )
            .await,
            json!(events.len() + 1),
            "at {width}×{height}"
        );
    }

    // On a phone the header wraps rather than overlapping, and the page does not scroll
    // sideways (wide tables scroll inside their cards).
    b.viewport(390, 844).await;
    b.shot("layout-activity-390").await;
    assert_eq!(
        b.js("(() => {
            const a = document.querySelector('#crumbs').getBoundingClientRect();
            const b = document.querySelector('#account').getBoundingClientRect();
            return a.bottom <= b.top || b.bottom <= a.top || a.right <= b.left || b.right <= a.left;
        })()")
            .await,
        json!(true)
    );
    assert_eq!(
        b.js("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        json!(true)
    );

    b.close().await;
}

// ---- The failure path -----------------------------------------------------------------

#[actix_web::test]
async fn an_owner_sees_a_failed_delivery_with_its_history_and_discards_searches_and_redelivers() {
    let app = spawn_app().await;
    let (agent_id, token, webhook_id) = app.agent_with_webhook().await;
    let mut ids = Vec::new();
    for (n, event) in ["push", "push", "issues"].iter().enumerate() {
        let body = json!({"type": event, "n": n}).to_string();
        let r = app
            .ingest_signed(&webhook_id, body, &[("content-type", "application/json")])
            .await;
        ids.push(r.json["deliveryId"].as_str().unwrap().to_owned());
    }
    // The agent rejects the first push for good, and leaves the issue unacked.
    let mut socket = app.connect(&token).await;
    for id in &ids {
        assert_eq!(socket.next_delivery(10).await["deliveryId"], id.as_str());
    }
    socket
        .send_json(
            json!({"type": "nack", "deliveryId": ids[0], "requeue": false,
            "reason": "unknown schema", "result": {"status": 422, "ms": 5}}),
        )
        .await;
    socket.ack(&ids[1]).await;
    crate::harness::wait_status(&app, &token, &webhook_id, &ids[0], "failed").await;

    let b = Browser::start(&app.base).await;
    b.goto("/").await;
    b.sign_in(&app.owner_token).await;
    b.goto(&format!("/#/agents/{agent_id}/webhooks/{webhook_id}"))
        .await;
    let failed_row = format!("#deliveries-table tr[data-delivery-id=\"{}\"]", ids[0]);
    b.until(
        "the failed row",
        &format!("document.querySelector('{failed_row} .badge.failed')"),
    )
    .await;
    assert!(b.text(&failed_row).await.contains("nacked: unknown schema"));

    // Its detail: the reason and the attempt history with the handler's answer.
    b.click(&failed_row).await;
    b.until(
        "the history",
        "document.querySelector('#detail-history tr[data-outcome=\"nacked\"]')",
    )
    .await;
    let history = b.text("#detail-history").await;
    assert!(
        history.contains("socket") && history.contains("422 · 5 ms"),
        "{history}"
    );
    assert!(history.contains("unknown schema"), "{history}");
    assert_eq!(
        b.attr("#discard", "disabled").await.as_deref(),
        Some("true")
    );
    b.shot("failed-detail").await;

    // The issue, still out, is discarded from its detail after a confirmation.
    let issue_row = format!("#deliveries-table tr[data-delivery-id=\"{}\"]", ids[2]);
    b.click(&issue_row).await;
    b.until(
        "the issue's detail",
        &format!("document.querySelector('#delivery-detail[data-delivery-id=\"{}\"] #discard:not([disabled])')", ids[2]),
    )
    .await;
    b.click("#discard").await;
    b.click("#confirm-ok").await;
    b.until(
        "the discarded row",
        &format!("document.querySelector('{issue_row}[data-status=\"failed\"]')"),
    )
    .await;
    crate::harness::wait_status(&app, &token, &webhook_id, &ids[2], "failed").await;

    // Search: by event type, by id, and back.
    b.fill("#search-event", "issues").await;
    b.click("#search").await;
    b.until(
        "only the issue",
        &format!("document.querySelectorAll('#deliveries-table tbody tr').length === 1 && document.querySelector('{issue_row}')"),
    )
    .await;
    b.click("#search-clear").await;
    b.fill("#search-id", &ids[1]).await;
    b.click("#search").await;
    b.until(
        "only the acked push",
        &format!("document.querySelectorAll('#deliveries-table tbody tr').length === 1 && document.querySelector('#deliveries-table tr[data-delivery-id=\"{}\"]')", ids[1]),
    )
    .await;
    b.click("#search-clear").await;
    b.until(
        "every row again",
        "document.querySelectorAll('#deliveries-table tbody tr').length === 3",
    )
    .await;
    // By time: from an hour ahead (local time, as the input takes it), nothing; cleared, all.
    b.js("(() => { const t = new Date(Date.now() + 3600e3); t.setMinutes(t.getMinutes() - t.getTimezoneOffset()); document.querySelector('#search-since').value = t.toISOString().slice(0, 19); return true; })()")
        .await;
    b.click("#search").await;
    b.find("#deliveries-empty").await;
    b.click("#search-clear").await;
    b.until(
        "every row again",
        "document.querySelectorAll('#deliveries-table tbody tr').length === 3",
    )
    .await;

    // Redeliver matching: the count comes before the button that queues them.
    b.click("#redeliver-matching").await;
    b.find("#redeliver-matching-panel").await;
    assert_eq!(
        b.attr("#match-confirm", "disabled").await.as_deref(),
        Some("true")
    );
    // Narrowed to an event type, one; and a changed filter must be counted again.
    b.fill("#match-event", "issues").await;
    b.click("#match-dry-run").await;
    b.until(
        "the count",
        "document.querySelector('#match-count').textContent.includes('1 delivery matches')",
    )
    .await;
    b.fill("#match-event", " ").await;
    assert_eq!(
        b.attr("#match-confirm", "disabled").await.as_deref(),
        Some("true")
    );
    b.click("#match-dry-run").await;
    b.until(
        "the count",
        "document.querySelector('#match-count').textContent.includes('2 deliveries match')",
    )
    .await;
    assert_eq!(b.text("#match-confirm").await, "Redeliver 2");
    // Nothing moved on the dry run.
    assert!(socket.next_incoming(1).await.is_none());
    b.shot("redeliver-matching").await;
    b.click("#match-confirm").await;
    b.until(
        "the requeue",
        "document.querySelector('#match-count').textContent.includes('Queued 2 again')",
    )
    .await;
    let first = socket.next_delivery(10).await;
    let second = socket.next_delivery(10).await;
    assert_eq!(
        [first["deliveryId"].clone(), second["deliveryId"].clone()],
        [json!(ids[0]), json!(ids[2])],
        "in their original order"
    );
    assert_eq!(first["attempt"], 2);
    b.close().await;
}

// ---- Test events ------------------------------------------------------------------------

#[actix_web::test]
async fn send_test_event_makes_a_delivery_that_shows_in_the_live_activity() {
    let app = spawn_app().await;
    let (agent_id, token) = app.create_agent("bot").await;
    let github = app
        .create_webhook(&app.owner_token, &agent_id, "GitHub", "github")
        .await;
    let github = github["webhookId"].as_str().unwrap().to_owned();
    let stripe = app
        .create_webhook(&app.owner_token, &agent_id, "Stripe", "stripe")
        .await;
    let stripe = stripe["webhookId"].as_str().unwrap().to_owned();
    let mut socket = app.connect(&token).await;

    let b = Browser::start(&app.base).await;
    b.goto("/").await;
    b.sign_in(&app.owner_token).await;
    b.goto(&format!("/#/agents/{agent_id}/webhooks/{github}"))
        .await;
    b.find("#live.on").await;
    b.find("#deliveries-empty").await;

    // The panel offers GitHub's events, push first; an issue is sent.
    b.click("#send-test-event").await;
    b.find("#test-event-panel").await;
    assert_eq!(b.value("#test-event-type").await, "push");
    assert!(
        b.js("document.querySelector('#test-event-unsigned') === null")
            .await
            == json!(true),
        "a GitHub test event is signed"
    );
    b.fill("#test-event-type", "issues").await;
    b.click("#test-event-send").await;
    b.until(
        "the sent delivery",
        "document.querySelector('#test-event-delivery')",
    )
    .await;
    let id = b.text("#test-event-delivery").await;
    assert!(id.starts_with("dlv_"), "{id}");
    b.shot("test-event").await;

    // The live activity shows it, and the agent has it, verified.
    let row = format!("#deliveries-table tr[data-delivery-id=\"{id}\"]");
    b.until("its row", &format!("document.querySelector('{row}')"))
        .await;
    let row_text = b.text(&row).await;
    assert!(row_text.contains("issues"), "{row_text}");
    assert!(!row_text.contains("unverified"), "{row_text}");
    let d = socket.next_delivery(10).await;
    assert_eq!(d["deliveryId"], id.as_str());
    assert_eq!(
        (&d["event"], &d["verified"]),
        (&json!("issues"), &json!(true))
    );
    socket.ack(&id).await;
    b.until(
        "its ack",
        &format!("document.querySelector('{row}[data-status=\"acked\"]')"),
    )
    .await;
    // "Show it" opens its detail.
    b.click("#test-event-open").await;
    b.find(&format!("#delivery-detail[data-delivery-id=\"{id}\"]"))
        .await;

    // A Stripe webhook without its provider secret says the event goes unsigned, and the
    // activity marks it unverified.
    b.goto(&format!("/#/agents/{agent_id}/webhooks/{stripe}"))
        .await;
    b.find("#deliveries-empty").await;
    b.click("#send-test-event").await;
    b.find("#test-event-unsigned").await;
    assert_eq!(
        b.value("#test-event-type").await,
        "payment_intent.succeeded"
    );
    b.click("#test-event-send").await;
    b.until(
        "the sent delivery",
        "document.querySelector('#test-event-delivery')",
    )
    .await;
    let id = b.text("#test-event-delivery").await;
    let row = format!("#deliveries-table tr[data-delivery-id=\"{id}\"]");
    b.until(
        "its unverified row",
        &format!("document.querySelector('{row} .unverified')"),
    )
    .await;
    let d = socket.next_delivery(10).await;
    assert_eq!(d["deliveryId"], id.as_str());
    assert_eq!(d["verified"], false);

    // An event type that is not a plain name: the hub's reason, on the field.
    b.fill("#test-event-type", "two words").await;
    b.click("#test-event-send").await;
    b.until(
        "the error",
        "!document.querySelector('#error').hidden && document.querySelector('#test-event-type[aria-invalid]')",
    )
    .await;
    assert!(b.text("#error").await.contains("event type"));
    b.close().await;
}

#[actix_web::test]
async fn an_owner_renames_rotates_and_deletes_from_the_dashboard() {
    let app = spawn_app().await;
    let (agent_id, old_agent_token, webhook_id) = app.agent_with_webhook().await;
    let mut socket = app.connect(&old_agent_token).await;

    let b = Browser::start(&app.base).await;
    b.goto("/").await;
    b.sign_in(&app.owner_token).await;
    b.goto(&format!("/#/agents/{agent_id}")).await;
    b.find("#agent-title").await;

    // Rename the agent, and its webhook.
    b.click("#rename-agent").await;
    b.fill("#name-dialog-input", "deployer").await;
    b.click("#name-dialog-ok").await;
    b.until(
        "the new agent name",
        "document.querySelector('#agent-title').textContent === 'deployer'",
    )
    .await;
    let listed = app.get("/v1/agents", &app.owner_token).await;
    assert_eq!(listed.json["agents"][0]["name"], "deployer");
    b.goto(&format!("/#/agents/{agent_id}/webhooks/{webhook_id}"))
        .await;
    b.click("#rename-webhook").await;
    b.fill("#name-dialog-input", "GitHub pushes").await;
    b.click("#name-dialog-ok").await;
    b.until(
        "the new webhook name",
        "document.querySelector('#webhook-title').textContent === 'GitHub pushes'",
    )
    .await;
    let read = app
        .get(
            &format!("/v1/agents/{agent_id}/webhooks/{webhook_id}"),
            &app.owner_token,
        )
        .await;
    assert_eq!(read.json["name"], "GitHub pushes");

    // Rotate the agent's token: shown once, the old one dead, the socket closed.
    b.goto(&format!("/#/agents/{agent_id}")).await;
    b.click("#rotate-agent-token").await;
    b.click("#confirm-ok").await;
    let new_agent_token = b.value("#rotated-agent-token").await;
    assert!(
        new_agent_token.starts_with("hh_agent_"),
        "{new_agent_token}"
    );
    match socket.next_incoming(10).await {
        Some(crate::harness::Incoming::Close(Some(r))) => assert_eq!(u16::from(r.code), 4001),
        _ => panic!("the old token's socket was not closed with 4001"),
    }
    assert_eq!(
        app.get("/v1/agents/me/webhooks", &old_agent_token)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get("/v1/agents/me/webhooks", &new_agent_token)
            .await
            .status,
        200
    );
    b.shot("agent-token-rotated").await;

    // Delete the agent: badged deleted here and in the list, its webhooks inactive.
    b.click("#delete-agent").await;
    b.click("#confirm-ok").await;
    b.until(
        "the deleted badge",
        "document.querySelector('#agent-head .badge.inactive')?.textContent === 'deleted'",
    )
    .await;
    assert!(b.text("#notice").await.contains("deleted"));
    b.until(
        "the webhook shown inactive",
        "document.querySelector('#webhooks-table tr.inactive')",
    )
    .await;
    assert_eq!(
        b.js("document.querySelector('#create-webhook-form') === null && document.querySelector('#delete-agent') === null")
            .await,
        json!(true)
    );
    assert_eq!(
        app.get("/v1/agents/me/webhooks", &new_agent_token)
            .await
            .status,
        401
    );
    b.goto("/#/").await;
    b.until(
        "the agents list with the deleted agent",
        &format!("document.querySelector('#agents-table tr[data-agent-id=\"{agent_id}\"].inactive .badge')?.textContent === 'deleted'"),
    )
    .await;

    // Rotate the owner token: shown once, the old one dead, this session still signed in.
    b.click("#rotate-owner-token").await;
    b.click("#confirm-ok").await;
    let new_owner_token = b.value("#rotated-owner-token").await;
    assert!(new_owner_token.starts_with("hh_owner_"));
    assert_eq!(app.get("/v1/agents", &app.owner_token).await.status, 401);
    assert_eq!(app.get("/v1/agents", &new_owner_token).await.status, 200);
    b.shot("owner-token-rotated").await;
    b.goto("/#/").await;
    b.find("#agents-table").await;
    b.sign_out().await;
    b.sign_in(&new_owner_token).await;
    b.find("#agents-table").await;
    b.close().await;
}
