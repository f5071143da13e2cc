//! One-time codes by email: the sign-in's MFA step and self-service password reset, with the
//! tenant's mail kept in the development outbox (`[mail] outbox = true`) and read back from it
//! (the store, and the `/dev/outbox` page).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::mfa::{at_mfa_step, gate_at, hidden, post};
use crate::support::*;

const OUTBOX: &str = "\n[mail]\noutbox = true\n";

/// A tenant whose mail goes to the outbox, with alice registered for codes by email at her
/// sign-in address (and no authenticator app).
async fn alice_with_email_codes(id: &str) -> (TestTenant, store::User) {
    let t = start_with(id, OUTBOX).await;
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    server::email_otp::register_address(t.state(), &alice.id, ALICE)
        .await
        .unwrap();
    (t, alice)
}

/// The code in the newest message of the outbox, and who it went to.
async fn last_code(t: &TestTenant) -> (String, String) {
    let mail = t.state().store.outbox_mail(1).await.unwrap();
    let mail = mail.first().expect("a message in the outbox");
    let code = mail
        .body
        .split_whitespace()
        .find_map(server::email_otp::normalize)
        .expect("a code in the message");
    (code, mail.recipient.clone())
}

/// Each hidden field once (a page with two forms repeats them).
fn fields(page: &str) -> Vec<(String, String)> {
    let mut seen = Vec::<(String, String)>::new();
    for (k, v) in hidden_inputs(page) {
        if !seen.iter().any(|(n, _)| *n == k) {
            seen.push((k, v));
        }
    }
    seen
}

#[tokio::test]
async fn email_codes_pass_the_sign_ins_mfa_step() {
    let (t, alice) = alice_with_email_codes("email-mfa").await;
    let b = browser();
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let page = page_text(&b, t.url(&path)).await;
    // Only the method she has: no authenticator form, no recovery codes, no enrolment.
    assert!(page.contains("Send a code to a***@contoso.test"), "{page}");
    assert!(!page.contains("action=\"/login/mfa\">"), "{page}");
    assert!(!page.contains("recovery_code"), "{page}");
    assert!(crate::mfa::enrolment_secret(&page).is_none());
    assert!(t.state().store.outbox_mail(10).await.unwrap().is_empty());

    let r = post(&t, &b, "/login/mfa/email/send", &page, ("unused", "")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("We sent a code to a***@contoso.test"),
        "{page}"
    );
    assert!(page.contains("action=\"/login/mfa/email\""), "{page}");
    let (code, to) = last_code(&t).await;
    assert_eq!(to, ALICE);
    assert_eq!(code.len(), 8);

    // The outbox page shows the same mail, and says what it is.
    let outbox = page_text(&b, t.url("/dev/outbox")).await;
    assert!(outbox.contains("Development outbox"), "{outbox}");
    assert!(outbox.contains(&code), "{outbox}");
    assert!(outbox.contains(ALICE), "{outbox}");

    // Asking again at once sends nothing new.
    let r = post(&t, &b, "/login/mfa/email/send", &page, ("unused", "")).await;
    let page = r.text().await.unwrap();
    assert!(page.contains("a moment ago"), "{page}");
    assert_eq!(t.state().store.outbox_mail(10).await.unwrap().len(), 1);

    // A wrong code counts as a wrong MFA code; the right one finishes the step, once.
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let r = post(&t, &b, "/login/mfa/email", &page, ("code", wrong)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(page.contains("action=\"/login/mfa/email\""), "{page}");
    let r = post(&t, &b, "/login/mfa/email", &page, ("code", &code)).await;
    assert_eq!(r.status(), 303);
    let gate = gate_at(&t, &location(&r)).await;
    assert!(gate.mfa_done);
    assert_eq!(gate.amr, ["pwd", "mfa", "otp"]);
    assert_eq!(gate.mfa_failures, 1);

    // The next sign-in: the spent code does not work again.
    let path = at_mfa_step(&t, &b, &alice, risk::RiskLevel::None).await;
    let page = page_text(&b, t.url(&path)).await;
    let r = post(&t, &b, "/login/mfa/email", &page, ("code", &code)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("no longer works"), "{page}");
    assert!(
        !page.contains(&format!("name=\"code\" value=\"{code}\"")),
        "never echoed"
    );

    // A form posted without its CSRF cookie's token is refused, and sends nothing.
    t.clock.advance(60);
    let r = b
        .post(t.url("/login/mfa/email/send"))
        .form(&[
            ("interaction", hidden(&page, "interaction")),
            ("csrf_token", "forged".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(t.state().store.outbox_mail(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_user_with_only_email_codes_resets_their_password() {
    let (t, _) = alice_with_email_codes("email-sspr").await;
    let b = browser();
    let page = page_text(&b, t.url("/password/reset")).await;
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), ALICE.into()));
    let page = b
        .post(t.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Send a code to a***@contoso.test"), "{page}");
    assert!(t.state().store.outbox_mail(10).await.unwrap().is_empty());

    let page = b
        .post(t.url("/password/reset/email"))
        .form(&fields(&page))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("We sent a code to a***@contoso.test"),
        "{page}"
    );
    let (code, to) = last_code(&t).await;
    assert_eq!(to, ALICE);
    let mail = t.state().store.outbox_mail(1).await.unwrap();
    assert!(
        mail[0].body.contains("reset your password"),
        "{}",
        mail[0].body
    );

    let mut form = fields(&page);
    form.push(("code".into(), code.clone()));
    form.push(("new_password".into(), "emailed-reset-password".into()));
    form.push(("confirm_password".into(), "emailed-reset-password".into()));
    let page = b
        .post(t.url("/password/reset/new"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your password was reset"), "{page}");

    // The new password signs her in; the code was spent.
    let redirect = sign_in(
        &t,
        &browser(),
        &rp_authorize(&t, ""),
        ALICE,
        "emailed-reset-password",
    )
    .await;
    assert!(redirect.starts_with(RP_REDIRECT), "{redirect}");
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    assert_eq!(
        server::email_otp::verify(
            t.state(),
            &alice.id,
            server::email_otp::Purpose::PasswordReset,
            &code
        )
        .await
        .unwrap(),
        server::email_otp::Verdict::NoCode
    );
}

#[tokio::test]
async fn the_outbox_page_exists_only_with_the_outbox() {
    let t = start("no-outbox").await;
    let r = browser().get(t.url("/dev/outbox")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Without mail, a registered address is no method: nothing to offer, no reset by email.
    let alice = t.state().store.user_by_email(ALICE).await.unwrap().unwrap();
    server::email_otp::register_address(t.state(), &alice.id, ALICE)
        .await
        .unwrap();
    assert!(!server::mfa::has_method(t.state(), &alice.id).await.unwrap());

    let t = start_with("empty-outbox", OUTBOX).await;
    let r = browser().get(t.url("/dev/outbox")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("No mail yet"), "{page}");
}
