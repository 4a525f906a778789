//! Who may use the console: the bearer token, the session cookie it buys, the CSRF token of
//! the verdict forms, and TLS client certificates.
//!
//! - **Token**: read once at start from `console.token_file`, which must not be readable by
//!   other users (mode `0600` or `0640`) and must hold at least [`MIN_TOKEN_LEN`] characters.
//!   A client presents it as `Authorization: Bearer TOKEN`, or once at `/login?token=TOKEN`,
//!   which sets the session cookie and redirects to the incidents page.
//! - **Session cookie**: a random value drawn at start (never the token), `HttpOnly`,
//!   `SameSite=Strict`, `Secure` over TLS. A restart ends every session.
//! - **CSRF**: a second random value, written into every verdict form and required with every
//!   POST. The cookie's `SameSite=Strict` already keeps other sites' forms out; the token also
//!   covers client certificates, which a browser sends to any page that asks.
//! - **Client certificates**: with `console.tls_client_ca`, the TLS handshake admits only
//!   clients whose certificate that CA signed; every request on such a connection is
//!   authenticated.
//!
//! Comparisons of secrets take constant time (`subtle`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use subtle::ConstantTimeEq as _;

/// The shortest token accepted, characters.
pub const MIN_TOKEN_LEN: usize = 16;
/// The session cookie's name.
pub const COOKIE: &str = "nbad_console";

/// The console's credentials.
#[derive(Clone)]
pub struct Auth {
    token: Option<String>,
    session: String,
    csrf: String,
    client_certs: bool,
    secure: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("client_certs", &self.client_certs)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Credentials from the settings: the token file's (checked), fresh session and CSRF values.
    ///
    /// # Errors
    /// The token file is missing, unreadable, readable by other users, or too short.
    pub fn load(token_file: Option<&Path>, client_certs: bool, secure: bool) -> anyhow::Result<Self> {
        let token = token_file.map(read_token).transpose()?;
        Ok(Self { token, session: random_hex()?, csrf: random_hex()?, client_certs, secure })
    }

    /// Credentials with a known token (tests).
    ///
    /// # Errors
    /// No randomness for the session.
    pub fn with_token(token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            token: Some(token.to_owned()),
            session: random_hex()?,
            csrf: random_hex()?,
            client_certs: false,
            secure: false,
        })
    }

    /// Whether `presented` is the token.
    #[must_use]
    pub fn token_ok(&self, presented: &str) -> bool {
        self.token.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Whether a request with these headers is authenticated.
    #[must_use]
    pub fn allows(&self, headers: &axum::http::HeaderMap) -> bool {
        if self.client_certs {
            return true;
        }
        let bearer = headers
            .get_all(axum::http::header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| self.token_ok(t.trim()));
        bearer || self.cookie_ok(headers)
    }

    fn cookie_ok(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|v| bool::from(v.as_bytes().ct_eq(self.session.as_bytes())))
    }

    /// Whether `presented` is the CSRF token.
    #[must_use]
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// The CSRF token the forms carry.
    #[must_use]
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The `Set-Cookie` value of a login.
    #[must_use]
    pub fn set_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}", self.session)
    }
}

/// Reads the token, refusing a file other users can read.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let key = || format!("console.token_file = {:?}", path.display().to_string());
    let meta = std::fs::metadata(path).with_context(|| format!("{}: cannot read the token file", key()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        anyhow::bail!(
            "{}: the token file is open to every user (mode {mode:04o}); expected mode 0600 or 0640 \
             (chmod 600 it)",
            key()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the token file", key()))?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!(
            "{}: the token must be one line of at least {MIN_TOKEN_LEN} printable characters without \
             spaces (e.g. from `head -c 24 /dev/urandom | base64`)",
            key()
        );
    }
    Ok(token.to_owned())
}

/// 32 random bytes in hex.
fn random_hex() -> anyhow::Result<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("console: the system has no randomness for a session"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
