//! Test helpers: a directory over an in-memory store, with the development outbox on.

#![allow(clippy::unwrap_used)]

use crate::config::Config;
use crate::passwords::Passwords;
use crate::protection::Protection;
use crate::{Clock, Directory, OffsetClock};
use std::sync::Arc;

/// A tenant with mail to the development outbox.
pub(crate) const CONFIG: &str = r#"
[tenant]
id = "contoso"
display_name = "Contoso"
issuer = "http://127.0.0.1:9443"
[server]
listen = "127.0.0.1:9443"
plain_http = true
[database]
url = "sqlite::memory:"
[mail]
outbox = true
"#;

/// A directory over an in-memory store, its clock, and a member `u1` (alice).
pub(crate) async fn directory() -> (Directory, Arc<OffsetClock>, String) {
    let config = Config::parse(CONFIG, "test.toml").unwrap();
    let store = store::Store::connect(
        "sqlite::memory:",
        std::sync::Arc::new(crate::vault::Vault::ephemeral()),
    )
    .await
    .unwrap();
    let clock = Arc::new(OffsetClock::default());
    let passwords = Passwords::new(&config.passwords).unwrap();
    let protection = Protection::load(config.risk.clone(), &store).await.unwrap();
    let dir = Directory::new(
        config,
        store,
        clock.clone(),
        passwords,
        protocol::jwt::KeySet::new(Vec::new(), 3600),
        Vec::new(),
        protection,
    );
    let user = dir
        .store
        .insert_user(&store::NewUser {
            id: "u1".into(),
            email: "alice@contoso.test".into(),
            display_name: "Alice".into(),
            given_name: None,
            family_name: None,
            password_hash: None,
            must_change_password: false,
            now: clock.now(),
        })
        .await
        .unwrap();
    (dir, clock, user.id)
}

/// A user as the store returns them, not stored anywhere: `u1`, Adele Vance; a guest of
/// `partner_id` if one is given, else a member.
pub(crate) fn user(partner_id: Option<&str>) -> store::User {
    use store::{User, UserStatus, UserType};
    User {
        id: "u1".into(),
        email: "adele@contoso.test".into(),
        display_name: "Adele Vance".into(),
        given_name: Some("Adele".into()),
        family_name: Some("Vance".into()),
        password_hash: None,
        status: UserStatus::Active,
        must_change_password: false,
        created_at: 1000,
        updated_at: 2000,
        user_type: if partner_id.is_some() {
            UserType::Guest
        } else {
            UserType::Member
        },
        partner_id: partner_id.map(str::to_owned),
        home_subject: None,
        invitation_state: None,
        home_user_risk: None,
    }
}
