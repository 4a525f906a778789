//! rustls client configuration from a sink's [`TlsSettings`] (the builder is the shared
//! [`crate::tls`]). Used by syslog over TLS (RFC 5425); the HTTP sinks give the same files to
//! reqwest.

use std::sync::Arc;

use rustls::ClientConfig;

use crate::deliver::config::TlsSettings;

/// A client configuration for `tls`.
pub(crate) fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let cert = tls.client_cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    crate::tls::client_config(tls.ca_file.as_deref(), cert)
}
