//! The seed's scenario (a) in a real browser: headless Chromium, driven over WebDriver, clicks
//! and types through the real pages. bob, at high user risk at his home (contoso), opens the
//! resource's demo app, signs in at the resource (fabrikam), which federates to his home and
//! then blocks him with the seed's sentence; the app shows the refusal; the block page links him
//! to his home's self-service password reset, where he proves himself with his authenticator and
//! chooses a new password; back in the demo app he signs in and sees his guest claims.
//!
//! What only a browser proves: the pages' forms, links, redirects, cookies (`__Host-`,
//! SameSite=Lax across the two tenants and the app) and Content-Security-Policy
//! (`form-action` holds a form's redirect to another origin in Chromium) let a person through.
//! Each step is saved as `target/browser/<step>.png`; a few also at phone size
//! (`<step>-phone.png`, 390x844).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/browser.sh` installs them; `.ci/run`
//! runs it): without them the test prints that it skipped.

use crate::federation::*;
use crate::risk::{bob_at_risk, policies_copy, resource_lines};
use crate::seed::BOB_TOTP;
use crate::support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use policy::codes::BLOCKED_MESSAGE;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const NEW_PASSWORD: &str = "bobs-new-browser-password";
/// Slow machines (two shared cores, the rest of the suite running) make pages slow to come.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// chromedriver on a loopback port of its own, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: `<target>/browser`, with `CARGO_TARGET_DIR` (relative to the
/// workspace, as cargo reads it) or the workspace's `target`.
fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace.join(d))
        .unwrap_or_else(|| workspace.join("target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn connect(driver: &Driver) -> Client {
    let caps = serde_json::json!({
        // The tenants serve TLS with the test process's own dev CA, which Chromium does not know.
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                // Root in a container: Chromium's sandbox cannot start there.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                "--no-first-run",
                "--disable-extensions",
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let start = Instant::now();
    loop {
        let mut builder = ClientBuilder::rustls().unwrap();
        match builder
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return c,
            // chromedriver takes a moment to listen.
            Err(_) if start.elapsed() < PAGE_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
        }
    }
}

/// The browser, and where its pictures go.
struct Browser {
    c: Client,
    shots: PathBuf,
}

impl Browser {
    /// The visible text of the page.
    async fn text(&self) -> String {
        match self.c.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page shows `expected`, saves `<step>.png`, then asserts the page does
    /// show it (after the picture, so a failure leaves one to look at).
    async fn step(&self, step: &str, expected: &str) -> String {
        let start = Instant::now();
        let mut text = self.text().await;
        while !text.contains(expected) && start.elapsed() < PAGE_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
            text = self.text().await;
        }
        self.shot(step).await;
        let url = self.url().await;
        assert!(
            text.contains(expected),
            "step {step}: expected {expected:?} at {url}, the page says:\n{text}"
        );
        text
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The current page again at phone size, as `<step>-phone.png`; the page must fit the
    /// phone's width (no sideways scrolling, nothing cut off at the right).
    async fn phone_shot(&self, step: &str) {
        self.viewport(PHONE).await;
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{step}-phone.png")), &png).unwrap();
        assert_eq!(png_size(&png), PHONE, "the phone picture is phone-sized");
        let overflow = self
            .c
            .execute(
                "const e = document.documentElement; return e.scrollWidth - e.clientWidth",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            overflow.as_i64(),
            Some(0),
            "step {step}: the page is wider than a phone"
        );
        self.viewport(DESKTOP).await;
    }

    /// Sizes the window so that the page itself gets `size`: a headless window still counts
    /// some pixels for browser chrome it does not draw.
    async fn viewport(&self, size: (u32, u32)) {
        let inner = || async {
            let v = self
                .c
                .execute("return [window.innerWidth, window.innerHeight]", vec![])
                .await
                .unwrap();
            let n = |i: usize| u32::try_from(v[i].as_u64().unwrap()).unwrap();
            (n(0), n(1))
        };
        self.c.set_window_size(size.0, size.1).await.unwrap();
        let got = inner().await;
        if got != size {
            self.c
                .set_window_size(2 * size.0 - got.0, 2 * size.1 - got.1)
                .await
                .unwrap();
        }
    }

    async fn url(&self) -> String {
        self.c.current_url().await.unwrap().to_string()
    }

    async fn type_into(&self, id: &str, text: &str) {
        let field = self
            .c
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id} on the page: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.c
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn href(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .attr("href")
            .await
            .unwrap()
            .unwrap_or_default()
    }
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[1..4], b"PNG");
    let n = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (n(16), n(20))
}

/// The resource's demo app, as `tenantd lab` runs it: a confidential client, not first-party
/// (the guest consents), on a loopback port chosen before the resource registers it.
struct Demo {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn demo_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_demo(port: u16, resource: &TestTenant) -> Demo {
    let url = format!("http://127.0.0.1:{port}");
    let cfg = demo::DemoConfig {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        issuer: url::Url::parse(&resource.issuer).unwrap(),
        client_id: "demo-app".into(),
        client_secret: Some("demo-app-secret".into()),
        redirect_uri: url::Url::parse(&format!("{url}/callback")).unwrap(),
        ca_file: Some(fixtures().ca.clone()),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        title: "Fabrikam demo app".into(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(demo::serve(cfg, async move {
        let _ = stopped.await;
    }));
    let b = browser();
    for _ in 0..400 {
        if b.get(format!("{url}/")).send().await.is_ok() {
            return Demo {
                url,
                stop: Some(stop),
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the demo app did not come up at {url}");
}

/// The current code of bob's authenticator app.
fn bob_code() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    crate::mfa::totp_at(BOB_TOTP, now)
}

#[tokio::test]
async fn a_bob_is_blocked_resets_at_home_and_gets_into_the_demo_app_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        println!(
            "skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (scripts/browser.sh installs them)"
        );
        return;
    }
    let began = Instant::now();
    let port = demo_port();
    let demo_app = format!(
        "\n[[apps]]\nclient_id = \"demo-app\"\nname = \"Fabrikam demo app\"\nclient_secret = \"demo-app-secret\"\nredirect_uris = [\"http://127.0.0.1:{port}/callback\"]\n"
    );
    let policies = policies_copy("fabrikam");
    let p = pair_with(
        "",
        &format!("{}{demo_app}", resource_lines(&policies, TRUSTED)),
    )
    .await;
    bob_at_risk(&p).await;
    let bob = p
        .home
        .state()
        .store
        .user_by_email(BOB)
        .await
        .unwrap()
        .unwrap();
    server::mfa::register_totp(p.home.state(), &bob.id, BOB_TOTP)
        .await
        .unwrap();
    let demo = start_demo(port, &p.resource).await;

    let shots = screenshot_dir();
    let driver = Driver::start(&shots);
    let c = connect(&driver).await;
    let b = Browser {
        c: c.clone(),
        shots,
    };
    b.viewport(DESKTOP).await;
    // The walk runs in a task of its own so that a failed assertion still ends the browser
    // session (and Chromium with it) before the panic is passed on.
    let walk = tokio::spawn(async move { walk(&b, &p, &demo).await });
    let outcome = walk.await;
    let _ = c.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    println!("browser test: {:.1} s", began.elapsed().as_secs_f64());
}

async fn walk(b: &Browser, p: &Pair, demo: &Demo) {
    // bob opens the resource's app and signs in: the resource asks for his email and sends him
    // home, where he enters his (leaked) password.
    b.c.goto(&format!("{}/", demo.url)).await.unwrap();
    b.step("01-demo-app", "Sign in").await;
    b.click("#sign-in").await;
    let page = b.step("02-resource-email", "Sign in").await;
    assert!(page.contains("Fabrikam demo app"), "{page}");
    assert!(b.url().await.starts_with(&p.resource.issuer));
    b.type_into("email", BOB).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.step("03-home-password", "Enter password").await;
    assert!(b.url().await.starts_with(&p.home.issuer), "at the home");
    b.type_into("password", BOB_PW).await;
    b.click("form[action='/login/password'] button[type=submit]")
        .await;

    // The resource blocks him with the seed's sentence and sends him to his home to reset.
    let page = b.step("04-blocked", BLOCKED_MESSAGE).await;
    b.phone_shot("04-blocked").await;
    assert!(
        b.url().await.starts_with(&p.resource.issuer),
        "the resource blocks"
    );
    assert!(
        page.contains("still blocked after resetting"),
        "the seed's last line: {page}"
    );
    let reset = b.href("#reset-password").await;
    assert_eq!(reset, p.home.url("/password/reset"));

    // The app hears of it as a standard OAuth error with the same sentence.
    b.click("#continue").await;
    let page = b.step("05-demo-app-refused", "access_denied").await;
    assert!(b.url().await.starts_with(&demo.url), "back at the app");
    assert!(page.contains(BLOCKED_MESSAGE), "{page}");

    // He tries again: his home remembers him, the resource still blocks him.
    b.click("#sign-in-again").await;
    b.step("06-resource-email-again", "Sign in").await;
    b.type_into("email", BOB).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.step("07-blocked-again", BLOCKED_MESSAGE).await;

    // Self-service password reset at his home: his email, a code from his authenticator app,
    // a new password that is not in any leak.
    b.click("#reset-password").await;
    b.step("08-reset-email", "Reset your password").await;
    assert_eq!(b.url().await, reset);
    b.type_into("email", BOB).await;
    b.click("form[action='/password/reset'] button[type=submit]")
        .await;
    b.step("09-reset-code", "Prove it is you").await;
    b.type_into("code", &bob_code()).await;
    b.type_into("new_password", NEW_PASSWORD).await;
    b.type_into("confirm_password", NEW_PASSWORD).await;
    b.shot("09-reset-code-filled").await;
    b.phone_shot("09-reset-code-filled").await;
    b.click("form[action='/password/reset/new'] button[type=submit]")
        .await;
    let page = b.step("10-reset-done", "Your password was reset").await;
    assert!(
        page.contains("any risk on your account is cleared"),
        "{page}"
    );
    let bob = p
        .home
        .state()
        .store
        .user_by_email(BOB)
        .await
        .unwrap()
        .unwrap();
    let status = server::user_risk::current(p.home.state(), &bob.id)
        .await
        .unwrap();
    assert_eq!(status.risk_state, risk::RiskState::Remediated);

    // Back to the app: the reset signed him out at home, so he signs in with the new password,
    // consents to the app at the resource, and is in.
    b.c.goto(&format!("{}/", demo.url)).await.unwrap();
    b.step("11-demo-app-again", "Sign in").await;
    b.click("#sign-in").await;
    b.step("12-resource-email-last", "Sign in").await;
    b.type_into("email", BOB).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.step("13-home-password-new", "Enter password").await;
    b.type_into("password", NEW_PASSWORD).await;
    b.click("form[action='/login/password'] button[type=submit]")
        .await;
    b.step("14-consent", "Permissions requested").await;
    assert!(b.url().await.starts_with(&p.resource.issuer));
    b.click("button[name=decision][value=allow]").await;
    let page = b.step("15-signed-in", "ID token claims").await;
    b.phone_shot("15-signed-in").await;
    assert!(b.url().await.starts_with(&demo.url), "back at the app");
    assert!(
        page.contains(&format!("Signed in at {}", p.resource.issuer)),
        "{page}"
    );
    assert!(page.contains(BOB), "{page}");
    assert!(page.contains("guest") && page.contains("contoso"), "{page}");
    assert!(!page.contains(BLOCKED_MESSAGE), "{page}");
}
