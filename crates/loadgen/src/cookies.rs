//! A virtual browser's cookies, kept per origin (scheme, host and port) so that one tenant's
//! cookies can be forgotten while another's are kept: `federated-flow` starts every flow at the
//! resource tenant afresh (no resource session, so it must federate) with the home tenant's
//! session still in place.
//!
//! Both lab tenants listen on 127.0.0.1, where a real browser would keep one jar for all ports.
//! The tenants' cookie names differ (`__Host-tenantd-<tenant>-…`), so splitting by port changes
//! nothing a tenant reads: it only stops one tenant's cookies from being sent to the other, as
//! when the tenants have their own host names.

use reqwest::cookie::CookieStore;
use reqwest::header::HeaderValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use url::Url;

/// Cookies per origin, each origin's in reqwest's own [`reqwest::cookie::Jar`].
#[derive(Debug, Default)]
pub struct Jar {
    origins: Mutex<HashMap<String, Arc<reqwest::cookie::Jar>>>,
}

impl Jar {
    /// Forget every cookie of `url`'s origin.
    pub fn forget(&self, url: &Url) {
        self.origins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&origin(url));
    }

    fn of(&self, url: &Url, create: bool) -> Option<Arc<reqwest::cookie::Jar>> {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        let key = origin(url);
        if create {
            return Some(origins.entry(key).or_default().clone());
        }
        origins.get(&key).cloned()
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl CookieStore for Jar {
    fn set_cookies(&self, cookie_headers: &mut dyn Iterator<Item = &HeaderValue>, url: &Url) {
        if let Some(jar) = self.of(url, true) {
            jar.set_cookies(cookie_headers, url);
        }
    }

    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        self.of(url, false)?.cookies(url)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(jar: &Jar, url: &Url, cookie: &'static str) {
        let v = HeaderValue::from_static(cookie);
        jar.set_cookies(&mut std::iter::once(&v), url);
    }

    #[test]
    fn forgets_one_origin_and_keeps_the_other() {
        let home = Url::parse("https://127.0.0.1:9443/login/password").unwrap();
        let resource = Url::parse("https://127.0.0.1:9444/login?interaction=x").unwrap();
        let jar = Jar::default();
        set(
            &jar,
            &home,
            "__Host-tenantd-contoso-session=s1; Path=/; Secure; HttpOnly",
        );
        set(
            &jar,
            &resource,
            "__Host-tenantd-fabrikam-csrf=c1; Path=/; Secure; HttpOnly",
        );
        let home_cb = Url::parse("https://127.0.0.1:9443/authorize?x=1").unwrap();
        let res_cb = Url::parse("https://127.0.0.1:9444/federation/callback").unwrap();
        assert_eq!(
            jar.cookies(&home_cb).unwrap(),
            "__Host-tenantd-contoso-session=s1"
        );
        assert_eq!(
            jar.cookies(&res_cb).unwrap(),
            "__Host-tenantd-fabrikam-csrf=c1"
        );
        jar.forget(&resource);
        assert!(jar.cookies(&res_cb).is_none());
        assert_eq!(
            jar.cookies(&home_cb).unwrap(),
            "__Host-tenantd-contoso-session=s1"
        );
    }
}
