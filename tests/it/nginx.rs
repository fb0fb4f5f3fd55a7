//! The hub behind Debian's real nginx, configured by the shipped `deploy/nginx.conf`, with
//! TLS ending at nginx: ingest, an agent socket, the live activity stream and a dashboard
//! sign-in all go through it over HTTPS, and what nginx must hold back (bodies over the
//! limit, `/metrics`) it does.
//!
//! nginx runs as the test's child on ports above 1024, in the foreground, with its pid,
//! logs and temporary files in a temporary directory; its error log is printed when a test
//! fails. It must be installed (`scripts/test` installs Debian's `nginx`): without it these
//! tests fail, saying so, rather than pass having tried nothing. The certificate is made
//! with the `openssl` command, which comes with every Debian system.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use awc::{http::header, Client, Connector};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{
    dashboard::next_event_where,
    harness::{process::free_port, spawn_app_with, wait_status, HubClient, TestApp},
};

const SHIPPED_SITE: &str = include_str!("../../deploy/nginx.conf");

/// The hub's default `--max-body-bytes`, which `client_max_body_size` must match.
const BODY_LIMIT: usize = 25 * 1024 * 1024;

/// nginx on the PATH, or where Debian puts it: /usr/sbin is not on every user's PATH.
fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: the nginx tests run the real nginx in front of the \
                 hub. Install Debian's package (`apt-get install nginx`), as scripts/test does."
            )
        })
}

/// Runs a command that must succeed, saying what failed if it does not.
fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not run: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1, as PEM files for nginx and DER for the
/// client to trust. Not a CA (`CA:FALSE`): the client's verifier takes the certificate
/// itself as the one it trusts, and refuses a CA certificate as a server's.
struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

fn self_signed_certificate(dir: &Path) -> Certificate {
    let (cert, key, der) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("cert.der"),
    );
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=hookhub test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    run(Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der));
    Certificate {
        der: fs::read(&der).unwrap(),
        cert,
        key,
    }
}

/// The shipped site with this test's ports, certificate and hub in place of the literals
/// its header names (one to a line). Each is replaced on the lines that are not comments,
/// and must be there exactly once, so that an edit of the shipped file which the test would no longer
/// cover fails the test instead.
fn render_site(http_port: u16, https_port: u16, cert: &Certificate, hub_port: u16) -> String {
    let replacements = [
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen [::]:80;", String::new()),
        (
            "listen 443 ssl;",
            format!("listen 127.0.0.1:{https_port} ssl;"),
        ),
        ("listen [::]:443 ssl;", String::new()),
        (
            "/etc/letsencrypt/live/hooks.example.com/fullchain.pem",
            cert.cert.display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/hooks.example.com/privkey.pem",
            cert.key.display().to_string(),
        ),
        ("127.0.0.1:8080", format!("127.0.0.1:{hub_port}")),
    ];
    let mut found = [0; 7];
    let mut site = String::new();
    for line in SHIPPED_SITE.lines() {
        let literal = replacements
            .iter()
            .position(|(literal, _)| line.contains(literal))
            .filter(|_| !line.trim_start().starts_with('#'));
        match literal {
            Some(i) => {
                let (literal, value) = &replacements[i];
                found[i] += line.matches(literal).count();
                site.push_str(&line.replace(literal, value));
            }
            None => site.push_str(line),
        }
        site.push('\n');
    }
    for ((literal, _), n) in replacements.iter().zip(found) {
        assert_eq!(n, 1, "deploy/nginx.conf should hold `{literal}` once");
    }
    site
}

/// What Debian's /etc/nginx/nginx.conf sets around the sites it includes, but with the
/// pid, logs and temporary files in `dir`, in the foreground, and as a single process:
/// killing it then leaves no worker behind, and no worker runs as `nobody` (as nginx's
/// workers do when it is started by root) without access to `dir`.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    let mime_types = if Path::new("/etc/nginx/mime.types").exists() {
        "include /etc/nginx/mime.types;"
    } else {
        ""
    };
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 768;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    {mime_types}
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {d}/access.log;
    gzip on;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/hookhub.conf;
}}
"
    )
}

/// A running nginx in front of a hub.
struct Nginx {
    child: Child,
    dir: TempDir,
    http_port: u16,
    https_port: u16,
    cert_der: Vec<u8>,
}

impl Nginx {
    fn start(hub_port: u16) -> Self {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let cert = self_signed_certificate(dir.path());
        let config = dir.path().join("nginx.conf");
        fs::write(&config, main_config(dir.path())).unwrap();
        let command = || {
            let mut c = Command::new(&binary);
            c.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&config)
                .arg("-e")
                .arg(dir.path().join("error.log"));
            c
        };
        // A port free_port found free can be taken before nginx binds it (tests run in
        // parallel, and bind ports of their own): a start that finds a port taken is
        // tried again on others.
        for _ in 0..5 {
            let (http_port, https_port) = (free_port(), free_port());
            if http_port == https_port {
                continue;
            }
            fs::write(
                dir.path().join("hookhub.conf"),
                render_site(http_port, https_port, &cert, hub_port),
            )
            .unwrap();
            // Checked first, so that a bad config is reported as one, not as a port that
            // never opens; and the shipped file must not even draw a warning.
            let test = command().arg("-t").output().expect("nginx runs");
            let said = String::from_utf8_lossy(&test.stderr);
            assert!(test.status.success(), "nginx -t: {said}");
            assert!(!said.contains("[warn]"), "nginx -t: {said}");

            let _ = fs::remove_file(dir.path().join("error.log"));
            let stderr = fs::File::create(dir.path().join("stderr.log")).unwrap();
            let mut child = command()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("nginx starts");
            match wait_until_listening(&mut child, dir.path()) {
                Ok(()) => {
                    return Self {
                        child,
                        dir,
                        http_port,
                        https_port,
                        cert_der: cert.der,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let logs = logs(dir.path());
                    assert!(logs.contains("Address already in use"), "{why}\n{logs}");
                }
            }
        }
        panic!(
            "nginx found its ports taken five times\n{}",
            logs(dir.path())
        );
    }

    fn logs(&self) -> String {
        logs(self.dir.path())
    }

    /// A client that trusts this nginx's certificate, and speaks HTTP/1.1 as the hub's
    /// own clients do (WebSockets need it).
    fn client(&self) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                self.cert_der.clone(),
            ))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client::builder()
            .connector(Connector::new().rustls_0_23(Arc::new(tls)))
            .timeout(Duration::from_secs(30))
            .finish()
    }
}

/// Waits until nginx has bound its ports: it writes its pid into its pid file only once
/// it has. (`nginx -t` leaves the file there, empty.)
fn wait_until_listening(nginx: &mut Child, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = nginx.try_wait().unwrap() {
            return Err(format!("nginx exited ({status})"));
        }
        let pid = fs::read_to_string(dir.join("nginx.pid")).unwrap_or_default();
        if pid.trim() == nginx.id().to_string() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("nginx did not start in 10 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nginx's error log and anything it wrote to stderr.
fn logs(dir: &Path) -> String {
    ["error.log", "stderr.log"]
        .iter()
        .map(|name| {
            let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
            format!("--- nginx {name} ---\n{text}")
        })
        .collect()
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A hub, nginx in front of it, and a client that reaches the hub only through nginx.
struct BehindNginx {
    app: TestApp,
    nginx: Nginx,
    /// The hub at `https://127.0.0.1:<nginx's port>`.
    proxied: HubClient,
}

async fn behind_nginx() -> BehindNginx {
    // Set as deploy/hookhub.service sets them: behind nginx every connection comes from
    // 127.0.0.1, and nginx bounds each client instead.
    let app = spawn_app_with(|c| {
        c.max_connections_per_ip = 0;
        c.max_bodies_per_ip = 0;
    })
    .await;
    let nginx = Nginx::start(app.port);
    let proxied = HubClient {
        base: format!("https://127.0.0.1:{}", nginx.https_port),
        port: nginx.https_port,
        client: nginx.client(),
        owner_token: app.owner_token.clone(),
        secrets: Default::default(),
    };
    BehindNginx {
        app,
        nginx,
        proxied,
    }
}

/// Signs in to the dashboard through `hub`: the `Set-Cookie` header and the cookie to
/// send back.
async fn sign_in(hub: &HubClient, headers: &[(&str, &str)]) -> (String, String) {
    let mut req = hub.client.post(hub.url("/dashboard/session"));
    for header in headers {
        req = req.insert_header(*header);
    }
    let resp = req
        .send_json(&json!({ "token": hub.owner_token }))
        .await
        .expect("sign-in sent");
    assert_eq!(resp.status().as_u16(), 200);
    let set_cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
    assert!(cookie.starts_with("hookhub_session="), "{set_cookie}");
    (set_cookie, cookie)
}

fn is_secure(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("secure"))
}

#[actix_web::test]
async fn ingest_and_an_agent_socket_work_through_nginx() {
    let BehindNginx { proxied: hub, .. } = &behind_nginx().await;
    let health = hub.request("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200, "{:?}", health.raw);

    // Made through nginx, like everything below.
    let (_, agent_token, webhook) = hub.agent_with_webhook().await;
    let mut socket = hub.connect(&agent_token).await;

    let body = r#"{"through":"nginx"}"#;
    let r = hub
        .ingest_signed(&webhook, body, &[("content-type", "application/json")])
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let id = r.json["deliveryId"].as_str().unwrap().to_owned();

    let delivery = socket.next_delivery(10).await;
    assert_eq!(delivery["deliveryId"], id.as_str());
    assert_eq!(delivery["body"], body);
    // The agent sees how the sender reached nginx, as nginx passes it on.
    assert_eq!(delivery["headers"]["x-forwarded-proto"], "https");
    assert_eq!(delivery["headers"]["x-forwarded-for"], "127.0.0.1");
    socket.ack(&id).await;
    wait_status(hub, &agent_token, &webhook, &id, "acked").await;
}

#[actix_web::test]
async fn the_live_activity_stream_comes_through_nginx_as_it_happens() {
    let BehindNginx { proxied: hub, .. } = &behind_nginx().await;
    let (agent, _, webhook) = hub.agent_with_webhook().await;
    // Read as the dashboard reads it: with its session cookie.
    let (_, cookie) = sign_in(hub, &[]).await;
    let mut stream = hub
        .client
        .get(hub.url(&format!(
            "/v1/agents/{agent}/webhooks/{webhook}/deliveries/stream"
        )))
        .insert_header((header::COOKIE, cookie))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status().as_u16(), 200);
    let content_type = stream.headers().get(header::CONTENT_TYPE).unwrap();
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{content_type:?}"
    );
    let mut buf = String::new();
    let (name, first) = next_event_where(&mut stream, &mut buf, |_, _| true).await;
    assert_eq!(name, "deliveries");
    assert_eq!(first["deliveries"], json!([]));

    // Posted only now, with the stream open. The stream lasts five minutes, so an event
    // held back until the response ends would not come within next_event_where's 10 s.
    let r = hub.ingest_signed(&webhook, "{}", &[]).await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let (name, page) = next_event_where(&mut stream, &mut buf, |_, v: &Value| {
        v["deliveries"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(name, "deliveries");
    assert_eq!(page["deliveries"][0]["deliveryId"], r.json["deliveryId"]);
}

#[actix_web::test]
async fn a_dashboard_sign_in_through_nginx_gets_a_secure_cookie_that_works() {
    let BehindNginx {
        app, proxied: hub, ..
    } = &behind_nginx().await;
    // The hub's public URL is plain http here, so the hub itself gives no `Secure`...
    let (direct, _) = sign_in(app, &[]).await;
    assert!(!is_secure(&direct), "{direct}");
    // ...and through nginx it does, from nginx's `X-Forwarded-Proto`, which replaces
    // whatever the client claimed.
    let (set_cookie, cookie) = sign_in(hub, &[("X-Forwarded-Proto", "http")]).await;
    assert!(is_secure(&set_cookie), "{set_cookie}");

    for path in ["/dashboard/session", "/v1/agents"] {
        let mut resp = hub
            .client
            .get(hub.url(path))
            .insert_header((header::COOKIE, cookie.clone()))
            .send()
            .await
            .expect("request sent");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}: {body}");
        if path == "/dashboard/session" {
            assert_eq!(body["accountId"], app.owner_account.as_str());
        }
    }
    // The page through nginx, with the browser told to keep to HTTPS.
    let page = hub.request("GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.headers.contains_key("strict-transport-security"));
}

#[actix_web::test]
async fn nginx_keeps_the_hubs_body_limit_redirects_http_and_hides_metrics() {
    let BehindNginx {
        app,
        nginx,
        proxied: hub,
    } = &behind_nginx().await;
    let (_, _, webhook) = hub.agent_with_webhook().await;

    // A body of exactly the hub's limit passes nginx and is taken; one byte more is
    // refused by nginx (its own page, not the hub's JSON error) and never reaches the hub.
    let r = hub
        .ingest_signed(&webhook, vec![b'a'; BODY_LIMIT], &[])
        .await;
    assert_eq!(r.status, 202, "{:?}", r.json);
    let r = hub
        .ingest_signed(&webhook, vec![b'a'; BODY_LIMIT + 1], &[])
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json, Value::Null, "{:?}", r.raw);

    // The hub serves /metrics on its own listener; nginx does not pass it on, however the
    // path is spelled.
    assert_eq!(app.request("GET", "/metrics", None, None).await.status, 200);
    for path in ["/metrics", "/metrics?format=text", "/%6Detrics"] {
        let r = hub.request("GET", path, None, None).await;
        assert_eq!(r.status, 403, "{path}: {:?}", r.raw);
    }

    // Plain HTTP is only a redirect to HTTPS.
    let plain = Client::builder().disable_redirects().finish();
    let resp = plain
        .get(format!("http://127.0.0.1:{}/healthz", nginx.http_port))
        .send()
        .await
        .expect("plain request sent");
    assert_eq!(resp.status().as_u16(), 301);
    let location = resp
        .headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(location, "https://127.0.0.1/healthz");
}
