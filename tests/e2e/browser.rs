//! The seed's scenario (a) in a real browser: headless Chromium, driven over WebDriver, clicks
//! and types through the real pages. bob, at high user risk at his home (contoso), opens the
//! resource's demo app, signs in at the resource (fabrikam), which federates to his home and
//! then blocks him with the seed's sentence; the app shows the refusal; the block page links him
//! to his home's self-service password reset, where he proves himself with his authenticator and
//! chooses a new password; back in the demo app he signs in and sees his guest claims.
//!
//! Then the other way out: bob's home administrator opens the admin pages, signs in on the
//! tenant's own sign-in pages, finds bob in Risky users with the User filter, dismisses his risk
//! (the confirmation reminds that his password is unchanged), sees it in the Audit log; bob, in
//! a browser of his own, then gets into the demo app with his old password.
//!
//! What only a browser proves: the pages' forms, links, redirects, cookies (`__Host-`,
//! SameSite=Lax across the two tenants and the app) and Content-Security-Policy
//! (`form-action` holds a form's redirect to another origin in Chromium) let a person through.
//! Each step is saved as `target/browser/<step>.png` (the admin walk's as `admin-<step>.png`);
//! a few also at phone size (`<step>-phone.png`, 390x844), where the page must not be wider
//! than the phone.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/browser.sh` installs them; `.ci/run`
//! runs it): without them the test prints that it skipped.

use crate::admin_pages::{ADMIN, ADMIN_PW, administrator};
use crate::federation::*;
use crate::risk::{blocked, bob_at_risk, policies_copy, resource_lines};
use crate::seed::{BOB_TOTP, bob_at, bob_risk};
use crate::support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use policy::codes::BLOCKED_MESSAGE;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
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
    /// Logs to `<dir>/chromedriver-<name>.log`.
    fn start(dir: &Path, name: &str) -> Driver {
        let port = stable_port();
        let log = std::fs::File::create(dir.join(format!("chromedriver-{name}.log"))).unwrap();
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

    /// The page's `h1`.
    async fn heading(&self) -> String {
        match self.c.find(Locator::Css("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's heading is `heading` (for pages whose words are all in the
    /// navigation bar too), then as [`Browser::step`].
    async fn titled(&self, step: &str, heading: &str) -> String {
        let start = Instant::now();
        while self.heading().await != heading && start.elapsed() < PAGE_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self.step(step, heading).await;
        assert_eq!(self.heading().await, heading, "step {step}");
        text
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

/// Whether Chromium or chromedriver is missing; says that the test skipped if so.
fn chromium_missing() -> bool {
    let missing = !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists();
    if missing {
        println!(
            "skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (scripts/browser.sh installs them)"
        );
    }
    missing
}

/// The seed's pair as `tenantd lab` runs it: the resource with its shipped policies, trusting
/// the home's user risk, with the demo app (on loopback port `port`) registered; bob at high
/// risk at home, with his authenticator app there.
async fn lab_pair(port: u16) -> Pair {
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
    let bob = bob_at(&p.home).await;
    server::mfa::register_totp(p.home.state(), &bob.id, BOB_TOTP)
        .await
        .unwrap();
    p
}

/// One chromedriver and the browser sessions opened on it.
struct Chromium {
    driver: Driver,
    shots: PathBuf,
    sessions: std::sync::Mutex<Vec<Client>>,
}

impl Chromium {
    /// A new browser session (its own cookies), with a desktop-sized page.
    async fn session(&self) -> Browser {
        let c = connect(&self.driver).await;
        self.sessions.lock().unwrap().push(c.clone());
        let b = Browser {
            c,
            shots: self.shots.clone(),
        };
        b.viewport(DESKTOP).await;
        b
    }
}

/// Runs `walk` with a chromedriver of its own, in a task of its own, so that a failed assertion
/// still ends the browser sessions (and Chromium with them) before the panic is passed on.
async fn in_chromium<F, Fut>(name: &str, walk: F)
where
    F: FnOnce(Arc<Chromium>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let shots = screenshot_dir();
    let chromium = Arc::new(Chromium {
        driver: Driver::start(&shots, name),
        shots,
        sessions: std::sync::Mutex::new(Vec::new()),
    });
    let outcome = tokio::spawn(walk(chromium.clone())).await;
    let sessions = std::mem::take(&mut *chromium.sessions.lock().unwrap());
    for c in sessions {
        // A session the walk closed already answers with an error: nothing to do.
        let _ = c.close().await;
    }
    drop(chromium);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn a_bob_is_blocked_resets_at_home_and_gets_into_the_demo_app_in_chromium() {
    if chromium_missing() {
        return;
    }
    let began = Instant::now();
    let port = stable_port();
    let p = lab_pair(port).await;
    let demo = start_demo(port, &p.resource).await;
    in_chromium("reset", |chromium| async move {
        let b = chromium.session().await;
        walk(&b, &p, &demo).await;
    })
    .await;
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

#[tokio::test]
async fn the_home_admin_dismisses_bobs_risk_in_the_admin_pages_in_chromium() {
    if chromium_missing() {
        return;
    }
    let began = Instant::now();
    let port = stable_port();
    let p = lab_pair(port).await;
    let (page, _) = blocked(
        federated_sign_in(&p, &browser(), &rp_authorize(&p.resource, ""), BOB, BOB_PW).await,
    );
    assert!(page.contains(BLOCKED_MESSAGE), "bob starts blocked: {page}");
    administrator(&p.home, ADMIN).await;
    let demo = start_demo(port, &p.resource).await;
    in_chromium("admin", |chromium| async move {
        let admin = chromium.session().await;
        admin_walk(&admin, &p).await;
        // bob in a browser of his own (the administrator's cookies are not his).
        let _ = admin.c.clone().close().await;
        let bob = chromium.session().await;
        bob_signs_in_to_the_demo_app(&bob, &p, &demo).await;
    })
    .await;
    println!("admin browser test: {:.1} s", began.elapsed().as_secs_f64());
}

/// The visible text of each row of the table `css`.
async fn rows(b: &Browser, css: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for row in b.c.find_all(Locator::Css(css)).await.unwrap() {
        texts.push(row.text().await.unwrap());
    }
    texts
}

async fn admin_walk(b: &Browser, p: &Pair) {
    // The pages send the administrator to the tenant's own sign-in pages.
    b.c.goto(&p.home.url("/admin")).await.unwrap();
    let page = b.step("admin-01-sign-in", "Sign in").await;
    assert!(b.url().await.starts_with(&p.home.issuer), "at the home");
    assert!(page.contains("account and admin pages"), "{page}");
    b.type_into("email", ADMIN).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.step("admin-02-password", "Enter password").await;
    b.type_into("password", ADMIN_PW).await;
    b.click("form[action='/login/password'] button[type=submit]")
        .await;

    // Risky users: bob, high.
    let page = b
        .step("admin-03-risky-users", "People of this organization")
        .await;
    b.phone_shot("admin-03-risky-users").await;
    assert_eq!(b.url().await, p.home.url("/admin/risky-users"));
    let listed = rows(b, "#risky-users tbody tr").await;
    assert!(
        listed.iter().any(|r| r.contains(BOB) && r.contains("high")),
        "bob, high: {listed:?}"
    );
    assert!(!page.contains(ALICE), "alice has no risk: {page}");

    // The User filter: a name nobody has, then bob.
    b.type_into("f-user", "zed").await;
    b.click("#apply-filters").await;
    b.step("admin-04-filter-nobody", "No risky users match")
        .await;
    b.type_into("f-user", "bob").await;
    b.click("#apply-filters").await;
    b.step("admin-05-filter-bob", BOB).await;
    assert!(b.url().await.contains("user=bob"), "{}", b.url().await);
    let listed = rows(b, "#risky-users tbody tr").await;
    assert_eq!(listed.len(), 1, "{listed:?}");

    // bob's page: high, at risk, the leaked credentials in his history.
    let bob = bob_at(&p.home).await;
    b.click(&format!("#risky-users a[href='/admin/users/{}']", bob.id))
        .await;
    let page = b.step("admin-06-bob", "Risk history").await;
    b.phone_shot("admin-06-bob").await;
    let text = |id: &str| {
        let id = id.to_owned();
        async move {
            b.c.find(Locator::Id(&id))
                .await
                .unwrap_or_else(|e| panic!("no #{id}: {e}"))
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(text("risk-level").await, "high");
    assert_eq!(text("risk-state").await, "At risk");
    let history = text("risk-history").await;
    assert!(history.contains("leakedCredentials"), "{history}");
    assert!(page.contains("Dismiss user risk"), "{page}");

    // Dismiss: the confirmation reminds that the password is unchanged.
    b.click("#dismiss").await;
    let page = b.step("admin-07-dismissed", "User risk dismissed").await;
    b.phone_shot("admin-07-dismissed").await;
    assert_eq!(text("done").await, "User risk dismissed");
    assert!(
        page.contains("their password is unchanged"),
        "the message: {page}"
    );
    let reminder = text("reminder").await;
    assert!(
        reminder.contains("does not change the password"),
        "{reminder}"
    );
    assert_eq!(bob_risk(p).await.risk_state, risk::RiskState::Dismissed);

    // Back on bob's page: dismissed, the newest line of his history on top.
    b.click(&format!("main a[href='/admin/users/{}']", bob.id))
        .await;
    b.step("admin-08-bob-dismissed", "Risk history").await;
    assert_eq!(text("risk-state").await, "Dismissed");
    let history = rows(b, "#risk-history li").await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].contains("An admin dismissed the user's risk")
            && history[1].contains("leakedCredentials"),
        "{history:?}"
    );

    // The audit log has it, by this administrator.
    b.click("nav a[href='/admin/audit']").await;
    b.step("admin-09-audit", "Every change administrators made")
        .await;
    b.phone_shot("admin-09-audit").await;
    let lines = rows(b, "#audit tbody tr").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Dismiss user risk") && l.contains(ADMIN)),
        "{lines:?}"
    );

    // The other pages fit a phone too (their tables scroll inside their boxes).
    for (n, href, heading) in [
        (10, "/admin/detections", "Risk detections"),
        (11, "/admin/sign-ins", "Sign-in logs"),
        (12, "/admin/policies", "Conditional Access"),
        (13, "/admin/users", "Users"),
        (14, "/admin/guests", "Guests"),
    ] {
        b.click(&format!("nav a[href='{href}']")).await;
        let step = format!("admin-{n:02}-{}", &href[7..]);
        b.titled(&step, heading).await;
        b.phone_shot(&step).await;
    }
}

/// bob, after the dismiss, signs in to the demo app through the resource and is let in.
async fn bob_signs_in_to_the_demo_app(b: &Browser, p: &Pair, demo: &Demo) {
    b.c.goto(&format!("{}/", demo.url)).await.unwrap();
    b.step("admin-15-demo-app", "Sign in").await;
    b.click("#sign-in").await;
    b.step("admin-16-resource-email", "Sign in").await;
    assert!(b.url().await.starts_with(&p.resource.issuer));
    b.type_into("email", BOB).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.step("admin-17-home-password", "Enter password").await;
    assert!(b.url().await.starts_with(&p.home.issuer), "at the home");
    b.type_into("password", BOB_PW).await;
    b.click("form[action='/login/password'] button[type=submit]")
        .await;
    b.step("admin-18-consent", "Permissions requested").await;
    b.click("button[name=decision][value=allow]").await;
    let page = b.step("admin-19-signed-in", "ID token claims").await;
    assert!(b.url().await.starts_with(&demo.url), "back at the app");
    assert!(page.contains(BOB), "{page}");
    assert!(!page.contains(BLOCKED_MESSAGE), "{page}");
}
