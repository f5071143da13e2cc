//! A member's security info (`/account/security`), driven like a browser: the member signs in
//! through the tenant's own flow, adds an authenticator app (QR code, first code, recovery codes
//! shown once), codes by email (their sign-in address at once, another address after its code),
//! gets new recovery codes (the old set void); once the sign-in is no longer recent, changes
//! wait for a code from an existing method; a form without its CSRF token is refused; a member
//! at risk may look but not add (53004).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mfa::{enrolment_secret, recovery_codes, totp_at};
use crate::support::*;

const OUTBOX: &str = "\n[mail]\noutbox = true\n";

/// GETs `path` in `b`, following this tenant's redirects (the pages' sign-in with a live
/// session needs no form), and returns the last page.
async fn follow(t: &TestTenant, b: &reqwest::Client, path: &str) -> String {
    let mut url = t.url(path);
    for _ in 0..8 {
        let r = b.get(&url).send().await.unwrap();
        if r.status() != 303 {
            assert_eq!(r.status(), 200, "{url}");
            return r.text().await.unwrap();
        }
        let next = location(&r);
        url = if next.starts_with('/') {
            t.url(&next)
        } else {
            next
        };
        assert!(url.starts_with(&t.issuer), "stays at the tenant: {url}");
    }
    panic!("too many redirects from {path}");
}

/// Signs alice in to her security info, as a browser would; returns the page.
async fn sign_in_to_security_info(t: &TestTenant, b: &reqwest::Client) -> String {
    let r = b.get(t.url("/account/security")).send().await.unwrap();
    assert_eq!(r.status(), 303, "not signed in: off to sign in");
    let authorize = location(&r);
    let q = query(&authorize);
    assert_eq!(q["client_id"], "tenantd-portal");
    let callback = sign_in(t, b, &authorize, ALICE, ALICE_PW).await;
    assert!(
        callback.starts_with(&t.url("/account/callback?")),
        "{callback}"
    );
    let r = b.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account/security");
    follow(t, b, "/account/security").await
}

/// The hidden fields of the form on `page` whose `action` is `action`.
fn action_form(page: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("name=\"action\" value=\"{action}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {action} form in {page}"));
    let start = page[..at].rfind("<form").unwrap();
    let end = at + page[at..].find("</form>").unwrap();
    hidden_inputs(&page[start..end])
}

/// Submits the `action` form of `page` with `extra` fields; returns the page it answers.
async fn act(
    t: &TestTenant,
    b: &reqwest::Client,
    page: &str,
    action: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut form = action_form(page, action);
    form.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let r = b
        .post(t.url("/account/security"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{action}");
    r.text().await.unwrap()
}

/// The newest code in the outbox, and its recipient.
async fn last_code(t: &TestTenant) -> (String, String) {
    let mail = t.state().store.outbox_mail(1).await.unwrap();
    let mail = mail.first().expect("a message");
    let code = mail
        .body
        .split_whitespace()
        .find_map(server::email_otp::normalize)
        .expect("a code");
    (code, mail.recipient.clone())
}

fn tenant_now(t: &TestTenant) -> u64 {
    u64::try_from(t.state().now()).unwrap()
}

#[tokio::test]
async fn a_member_manages_their_methods_in_security_info() {
    let t = start_with("account", OUTBOX).await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    let b = browser();
    let page = sign_in_to_security_info(&t, &b).await;
    assert!(page.contains("Security info"), "{page}");
    assert!(
        page.contains("<strong>Authenticator app</strong>: none"),
        "{page}"
    );
    assert!(
        page.contains("<strong>Recovery codes</strong>: 0 left"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"prove\""),
        "a fresh sign-in needs no code"
    );

    // An authenticator app: QR code and key, then its first code; recovery codes shown once.
    let page = act(&t, &b, &page, "totp-start", &[]).await;
    assert!(
        page.contains("<svg role=\"img\" aria-label=\"QR code of the setup key\""),
        "{page}"
    );
    let secret = enrolment_secret(&page).expect("the key");
    let page = act(
        &t,
        &b,
        &page,
        "totp-confirm",
        &[("code", &totp_at(&secret, tenant_now(&t)))],
    )
    .await;
    assert!(page.contains("Your authenticator app is set up"), "{page}");
    let first_codes = recovery_codes(&page);
    assert_eq!(first_codes.len(), 10);
    assert!(
        page.contains("<strong>Authenticator app</strong>: set up"),
        "{page}"
    );
    assert!(signin::mfa::has_totp(t.state(), &alice.id).await.unwrap());

    // Codes by email to the sign-in address: at once.
    let page = act(&t, &b, &page, "email-add", &[("email", ALICE)]).await;
    assert!(page.contains("now go to a***@contoso.test"), "{page}");
    assert!(t.state().store.outbox_mail(10).await.unwrap().is_empty());
    // Another address: only once its code comes back.
    let page = act(
        &t,
        &b,
        &page,
        "email-add",
        &[("email", "Other@Example.test")],
    )
    .await;
    assert!(page.contains("Confirm the new address"), "{page}");
    let (code, to) = last_code(&t).await;
    assert_eq!(to, "other@example.test");
    assert_eq!(
        t.state()
            .store
            .email_otp_method(&alice.id)
            .await
            .unwrap()
            .unwrap()
            .email,
        ALICE,
        "not changed before the code"
    );
    let page = act(&t, &b, &page, "email-confirm", &[("code", &code)]).await;
    assert!(page.contains("now go to o***@example.test"), "{page}");

    // New recovery codes: the old set is void.
    let page = act(&t, &b, &page, "recovery-codes", &[]).await;
    let new_codes = recovery_codes(&page);
    assert_eq!(new_codes.len(), 10);
    assert!(
        !signin::mfa::use_recovery_code(t.state(), &alice.id, &first_codes[0])
            .await
            .unwrap()
    );
    assert!(
        page.contains("<strong>Recovery codes</strong>: 10 left"),
        "{page}"
    );

    // A form without its CSRF token is refused.
    let r = b
        .post(t.url("/account/security"))
        .form(&[("action", "email-remove")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Later: the sign-in is no longer recent, so a change waits for a code.
    t.clock.advance(700);
    let page = follow(&t, &b, "/account/security").await;
    assert!(page.contains("id=\"prove\""), "{page}");
    assert!(!page.contains("value=\"email-remove\""), "{page}");
    let mut form = action_form(&page, "prove");
    form.retain(|(k, _)| k == "csrf_token");
    form.push(("action".into(), "email-remove".into()));
    let r = b
        .post(t.url("/account/security"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let refused = r.text().await.unwrap();
    assert!(refused.contains("Confirm it&#39;s you first"), "{refused}");
    assert!(
        t.state()
            .store
            .email_otp_method(&alice.id)
            .await
            .unwrap()
            .is_some()
    );
    let page = act(&t, &b, &refused, "prove", &[("code", "000000")]).await;
    assert!(page.contains("didn&#39;t work"), "{page}");
    let page = act(
        &t,
        &b,
        &page,
        "prove",
        &[("code", &totp_at(&secret, tenant_now(&t)))],
    )
    .await;
    assert!(page.contains("you can change your security info"), "{page}");
    let page = act(&t, &b, &page, "email-remove", &[]).await;
    assert!(page.contains("Codes by email are off"), "{page}");
    assert!(
        t.state()
            .store
            .email_otp_method(&alice.id)
            .await
            .unwrap()
            .is_none()
    );
    let page = act(&t, &b, &page, "totp-remove", &[]).await;
    assert!(page.contains("authenticator app was removed"), "{page}");
    assert!(!signin::mfa::has_totp(t.state(), &alice.id).await.unwrap());
}

#[tokio::test]
async fn a_member_at_risk_may_look_but_not_add_a_method() {
    let t = start_with("account-risk", OUTBOX).await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    server::user_risk::remediate(
        t.state(),
        &alice.id,
        risk::UserRiskEvent::AdminConfirmedCompromised,
        risk::Actor::Admin("test".into()),
    )
    .await
    .unwrap();
    let b = browser();
    let page = sign_in_to_security_info(&t, &b).await;
    assert!(page.contains("53004"), "{page}");
    assert!(!page.contains("value=\"totp-start\""), "{page}");
    // Posted anyway: refused, nothing registered.
    let form: Vec<(String, String)> = hidden_inputs(&page)
        .into_iter()
        .filter(|(k, _)| k == "csrf_token")
        .take(1)
        .collect();
    for action in ["totp-start", "email-add", "recovery-codes"] {
        let mut f = form.clone();
        f.push(("action".into(), action.into()));
        f.push(("email".into(), ALICE.into()));
        let r = b
            .post(t.url("/account/security"))
            .form(&f)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("no new method can be added"),
            "{action}: {page}"
        );
        assert!(enrolment_secret(&page).is_none());
    }
    assert!(
        t.state()
            .store
            .unconfirmed_totp(&alice.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.state()
            .store
            .email_otp_method(&alice.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.state()
            .store
            .unused_recovery_codes(&alice.id)
            .await
            .unwrap(),
        0
    );
}
