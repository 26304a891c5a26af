//! The control plane's PKI: a self-signed cluster CA, the API server's serving certificate, and the
//! bearer tokens for the admin user and for node agents, all kept under `DATA_DIR/pki`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Serialize;

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "apiserver.crt";
const SERVER_KEY: &str = "apiserver.key";
const ADMIN_TOKEN: &str = "admin.token";
const NODE_TOKEN: &str = "node.token";

const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// Same lifetime kubeadm gives the apiserver certificate; renewal happens on restart.
const SERVER_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Backdating tolerates clients whose clocks lag a little behind ours.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Names every in-cluster and local client may use to reach the API server.
const DEFAULT_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

pub const KUBECONFIG_CLUSTER: &str = "tinykube";
pub const KUBECONFIG_USER: &str = "admin";
pub const KUBECONFIG_CONTEXT: &str = "tinykube";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid subject alternative name {name:?}: {reason}")]
    InvalidSan { name: String, reason: String },
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("building TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("encoding kubeconfig: {0}")]
    Kubeconfig(#[from] serde_yaml::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, reason: impl fmt::Display) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[derive(Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_token: String,
    pub node_token: String,
}

/// Keys and tokens are secrets: keep them out of logs.
impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads DIR/pki/{ca.crt,ca.key,apiserver.crt,apiserver.key,admin.token,node.token}, creating
    /// whatever is missing. Re-issues the serving certificate (keeping the CA) when it lacks one of
    /// `extra_sans`, is not signed by the CA, does not match its key, or expires within 30 days.
    /// Files are written atomically; keys and tokens get mode 0600. Unparseable files are errors
    /// naming the file: they are never silently replaced, since someone may have put them there.
    pub fn load_or_create(data_dir: &Path, extra_sans: &[String]) -> Result<Self> {
        let sans = Sans::new(extra_sans)?;
        let dir = data_dir.join("pki");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;

        let ca = load_or_create_ca(&dir)?;
        let (server_cert_pem, server_key_pem) = load_or_issue_server_cert(&dir, &ca, &sans)?;
        let admin_token = load_or_create_token(&dir.join(ADMIN_TOKEN))?;
        let node_token = load_or_create_token(&dir.join(NODE_TOKEN))?;

        Ok(Pki {
            ca_cert_pem: ca.cert_pem,
            ca_key_pem: ca.key_pem,
            server_cert_pem,
            server_key_pem,
            admin_token,
            node_token,
        })
    }

    /// A rustls server configuration serving the API server certificate, offering h2 and http/1.1.
    /// A serving certificate for a node agent's own endpoint (logs, exec), signed by the cluster CA,
    /// naming the node and its addresses. Issued at registration; kept only in the agent's memory.
    pub fn issue_node_cert(&self, node_name: &str, ips: &[IpAddr]) -> Result<(String, String)> {
        let gen_err = |source| Error::Generate { what: "node serving certificate", source };
        let ca_path = Path::new("ca.crt");
        let ca_der = first_cert(&self.ca_cert_pem, ca_path)?;
        let ca_key = KeyPair::from_pem(&self.ca_key_pem).map_err(gen_err)?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).map_err(|e| invalid(ca_path, e))?;
        let key = KeyPair::generate().map_err(gen_err)?;
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, format!("system:node:{node_name}"));
        let mut sans = vec![SanType::DnsName(node_name.to_string().try_into().map_err(gen_err)?)];
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + SERVER_VALIDITY).into();
        params.serial_number = Some(random_serial());
        let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = parse_certs(&self.server_cert_pem, Path::new(SERVER_CERT))?;
        let key = parse_private_key(&self.server_key_pem, Path::new(SERVER_KEY))?;
        // Explicit provider: other workspace crates may enable aws-lc-rs, which would make the
        // process-default provider ambiguous.
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Writes a kubeconfig for the admin user (cluster and context "tinykube") to `path`,
    /// atomically and with mode 0600, creating its parent directory if needed.
    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<()> {
        let ca_data = base64::engine::general_purpose::STANDARD.encode(self.ca_cert_pem.as_bytes());
        let config = Kubeconfig {
            api_version: "v1",
            kind: "Config",
            clusters: vec![NamedCluster {
                name: KUBECONFIG_CLUSTER,
                cluster: Cluster {
                    server: server_url,
                    certificate_authority_data: &ca_data,
                },
            }],
            users: vec![NamedUser {
                name: KUBECONFIG_USER,
                user: User {
                    token: &self.admin_token,
                },
            }],
            contexts: vec![NamedContext {
                name: KUBECONFIG_CONTEXT,
                context: Context {
                    cluster: KUBECONFIG_CLUSTER,
                    user: KUBECONFIG_USER,
                },
            }],
            current_context: KUBECONFIG_CONTEXT,
            preferences: Preferences {},
        };
        let yaml = serde_yaml::to_string(&config)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        write_atomic(path, yaml.as_bytes(), 0o600)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: Vec<NamedCluster<'a>>,
    users: Vec<NamedUser<'a>>,
    contexts: Vec<NamedContext<'a>>,
    current_context: &'a str,
    preferences: Preferences,
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    name: &'a str,
    cluster: Cluster<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster<'a> {
    server: &'a str,
    certificate_authority_data: &'a str,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: User<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    name: &'a str,
    context: Context<'a>,
}

#[derive(Serialize)]
struct Context<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct Preferences {}

struct Ca {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

fn load_or_create_ca(dir: &Path) -> Result<Ca> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let cert_pem = read_optional(&cert_path)?;
    // A key without a certificate is what a crash between the two writes leaves behind; nobody can
    // trust a CA whose certificate was never written, so starting over is safe.
    let Some(cert_pem) = cert_pem else {
        return create_ca(&cert_path, &key_path);
    };
    let Some(key_pem) = read_optional(&key_path)? else {
        return Err(invalid(
            &key_path,
            format!(
                "missing, but {CA_CERT} exists; restore it, or delete {CA_CERT} to create a new cluster CA"
            ),
        ));
    };
    tighten_mode(&key_path)?;

    let cert_der = first_cert(&cert_pem, &cert_path)?;
    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| invalid(&cert_path, format!("unparseable certificate: {e}")))?;
    if !x509.is_ca() {
        return Err(invalid(
            &cert_path,
            "not a CA certificate (basicConstraints CA is not set)",
        ));
    }
    let not_after = asn1_to_system_time(x509.validity().not_after.timestamp());
    if not_after <= SystemTime::now() {
        return Err(invalid(
            &cert_path,
            format!(
                "the cluster CA expired at {}; delete {CA_CERT} and {CA_KEY} to create a new one",
                x509.validity().not_after
            ),
        ));
    }
    if not_after <= SystemTime::now() + RENEW_BEFORE {
        tracing::warn!(path = %cert_path.display(), not_after = %x509.validity().not_after, "cluster CA expires soon");
    }

    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| invalid(&key_path, format!("unparseable private key: {e}")))?;
    if key.subject_public_key_info() != x509.public_key().raw {
        return Err(invalid(
            &key_path,
            format!("does not match the public key in {CA_CERT}"),
        ));
    }
    let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| invalid(&cert_path, e))?;
    Ok(Ca {
        cert_pem,
        key_pem,
        cert_der,
        issuer,
        not_after,
    })
}

fn create_ca(cert_path: &Path, key_path: &Path) -> Result<Ca> {
    let gen_err = |source| Error::Generate {
        what: "cluster CA",
        source,
    };
    let key = KeyPair::generate().map_err(gen_err)?;
    let now = SystemTime::now();
    let not_after = now + CA_VALIDITY;

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "tinykube-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - BACKDATE).into();
    params.not_after = not_after.into();
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key).map_err(gen_err)?;

    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    // Key first: see load_or_create_ca for how a crash between the writes is recovered.
    write_atomic(key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(cert_path, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "created cluster CA");

    let cert_der = cert.der().clone();
    Ok(Ca {
        cert_pem,
        key_pem,
        cert_der,
        issuer: Issuer::new(params, key),
        not_after,
    })
}

/// The serving certificate's required subject alternative names, normalised.
struct Sans {
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
}

impl Sans {
    fn new(extra: &[String]) -> Result<Self> {
        let mut sans = Sans {
            dns: BTreeSet::new(),
            ips: BTreeSet::new(),
        };
        for name in DEFAULT_SANS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            match name.parse::<IpAddr>() {
                Ok(ip) => {
                    sans.ips.insert(ip);
                }
                Err(_) => {
                    let lower = name.to_ascii_lowercase();
                    if let Err(reason) = check_dns_name(&lower) {
                        return Err(Error::InvalidSan {
                            name: name.to_string(),
                            reason,
                        });
                    }
                    sans.dns.insert(lower);
                }
            }
        }
        Ok(sans)
    }

    fn to_rcgen(&self) -> Result<Vec<SanType>> {
        let mut out = Vec::with_capacity(self.dns.len() + self.ips.len());
        for name in &self.dns {
            let ia5 = name
                .clone()
                .try_into()
                .map_err(|e: rcgen::Error| Error::InvalidSan {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            out.push(SanType::DnsName(ia5));
        }
        out.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        Ok(out)
    }
}

/// Hostname syntax (RFC 1123 labels), with a leading `*.` wildcard allowed as in certificates.
fn check_dns_name(name: &str) -> std::result::Result<(), String> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in rest.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each label must be 1 to 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("labels may contain only letters, digits and '-'".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("labels must not start or end with '-'".into());
        }
    }
    Ok(())
}

fn load_or_issue_server_cert(dir: &Path, ca: &Ca, sans: &Sans) -> Result<(String, String)> {
    let cert_path = dir.join(SERVER_CERT);
    let key_path = dir.join(SERVER_KEY);
    let existing = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => Some((cert, key)),
        _ => None,
    };
    if let Some((cert_pem, key_pem)) = existing {
        tighten_mode(&key_path)?;
        match server_cert_unfit(&cert_path, &cert_pem, &key_path, &key_pem, ca, sans)? {
            None => return Ok((cert_pem, key_pem)),
            Some(reason) => {
                tracing::info!(path = %cert_path.display(), %reason, "re-issuing serving certificate")
            }
        }
    }
    issue_server_cert(&cert_path, &key_path, ca, sans)
}

/// Why a parseable serving certificate can no longer be used, or `None` when it is fine.
fn server_cert_unfit(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
    ca: &Ca,
    sans: &Sans,
) -> Result<Option<String>> {
    let cert_der = first_cert(cert_pem, cert_path)?;
    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| invalid(cert_path, format!("unparseable certificate: {e}")))?;
    let key = KeyPair::from_pem(key_pem)
        .map_err(|e| invalid(key_path, format!("unparseable private key: {e}")))?;

    if key.subject_public_key_info() != x509.public_key().raw {
        return Ok(Some(format!("{SERVER_KEY} does not match the certificate")));
    }

    let not_after = asn1_to_system_time(x509.validity().not_after.timestamp());
    if not_after <= SystemTime::now() + RENEW_BEFORE {
        return Ok(Some(format!("expires at {}", x509.validity().not_after)));
    }

    // webpki does the chain check (signature, validity, serverAuth usage) exactly as clients will.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.cert_der.clone())
        .map_err(|e| invalid(Path::new(CA_CERT), e))?;
    let parsed = match rustls::server::ParsedCertificate::try_from(&cert_der) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Some(format!("rejected by the TLS stack: {e}"))),
    };
    let provider = rustls::crypto::ring::default_provider();
    if let Err(e) = rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    ) {
        return Ok(Some(format!("does not verify against {CA_CERT}: {e}")));
    }

    let mut have_dns = BTreeSet::new();
    let mut have_ips = BTreeSet::new();
    if let Ok(Some(ext)) = x509.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => {
                    have_dns.insert(n.to_ascii_lowercase());
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        have_ips.insert(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let missing: Vec<String> = (sans.dns.difference(&have_dns).cloned())
        .chain(sans.ips.difference(&have_ips).map(IpAddr::to_string))
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!(
            "lacks subject alternative names {}",
            missing.join(", ")
        )));
    }
    Ok(None)
}

fn issue_server_cert(
    cert_path: &Path,
    key_path: &Path,
    ca: &Ca,
    sans: &Sans,
) -> Result<(String, String)> {
    let gen_err = |source| Error::Generate {
        what: "serving certificate",
        source,
    };
    let key = KeyPair::generate().map_err(gen_err)?;
    let now = SystemTime::now();

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.subject_alt_names = sans.to_rcgen()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - BACKDATE).into();
    // A leaf outliving its CA would look fresh to the renewal check while clients already reject it.
    params.not_after = (now + SERVER_VALIDITY).min(ca.not_after).into();
    params.serial_number = Some(random_serial());
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;

    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    write_atomic(key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(cert_path, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "issued serving certificate");
    Ok((cert_pem, key_pem))
}

fn load_or_create_token(path: &Path) -> Result<String> {
    if let Some(contents) = read_optional(path)? {
        tighten_mode(path)?;
        let token = contents.trim();
        if token.is_empty() {
            return Err(invalid(path, "empty token"));
        }
        // Bearer tokens travel in an Authorization header: visible ASCII only.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                path,
                "token must be printable ASCII without whitespace",
            ));
        }
        return Ok(token.to_string());
    }
    let token = random_hex_token();
    write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

fn random_hex_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte once DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn asn1_to_system_time(timestamp: i64) -> SystemTime {
    match u64::try_from(timestamp) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    }
}

fn parse_certs(pem: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("unparseable PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "no PEM CERTIFICATE block found"));
    }
    Ok(certs)
}

fn first_cert(pem: &str, path: &Path) -> Result<CertificateDer<'static>> {
    let mut certs = parse_certs(pem, path)?;
    Ok(certs.swap_remove(0))
}

fn parse_private_key(pem: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| invalid(path, format!("unparseable PEM: {e}")))?
        .ok_or_else(|| invalid(path, "no PEM private key block found"))
}

/// `None` when the file does not exist; non-UTF-8 content is an error naming the file.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| invalid(path, "not valid UTF-8 text")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Secrets copied in by hand often arrive world-readable.
fn tighten_mode(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "secret file was readable by others; setting mode 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Write-to-temp, fsync, rename, fsync-directory: readers see the old or the new file, never a torn one,
/// and secrets are never briefly readable with a looser mode.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| invalid(path, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);

    let result = (|| {
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(contents).map_err(io_err(&tmp))?;
        // The umask may have narrowed the mode; secrets stay narrow, public files become readable.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::process::Command;

    fn pki_dir(data: &tempfile::TempDir) -> PathBuf {
        data.path().join("pki")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    fn sans_of(cert_pem: &str) -> Vec<String> {
        let der = first_cert(cert_pem, Path::new("test")).expect("cert");
        let (_, x509) = x509_parser::parse_x509_certificate(&der).expect("parse");
        let ext = x509
            .subject_alternative_name()
            .expect("san ext")
            .expect("san present");
        ext.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    ip_from_bytes(b).map(|ip| ip.to_string())
                }
                _ => None,
            })
            .collect()
    }

    /// Writes a serving certificate signed by the data dir's CA but valid only for `validity`.
    fn write_short_lived_server_cert(data: &Path, validity: Duration) {
        let dir = data.join("pki");
        let ca = load_or_create_ca(&dir).expect("ca");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = (SystemTime::now() - BACKDATE).into();
        params.not_after = (SystemTime::now() + validity).into();
        let cert = params.signed_by(&key, &ca.issuer).expect("sign");
        fs::write(dir.join(SERVER_CERT), cert.pem()).expect("write cert");
        fs::write(dir.join(SERVER_KEY), key.serialize_pem()).expect("write key");
    }

    #[test]
    fn loading_again_returns_the_same_ca_certificate_and_tokens() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(data.path(), &[]).expect("create");
        let second = Pki::load_or_create(data.path(), &[]).expect("load");
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.ca_key_pem, second.ca_key_pem);
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        assert_eq!(first.server_key_pem, second.server_key_pem);
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(first.node_token, second.node_token);
    }

    #[test]
    fn tokens_are_64_hex_characters_and_distinct() {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("create");
        for token in [&pki.admin_token, &pki.node_token] {
            assert_eq!(token.len(), 64);
            assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(pki.admin_token, pki.node_token);
    }

    #[test]
    fn serving_certificate_covers_the_default_names_and_verifies_against_the_ca() {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(
            data.path(),
            &["10.96.0.1".to_string(), "api.example.com".to_string()],
        )
        .expect("create");
        let ca = first_cert(&pki.ca_cert_pem, Path::new("ca")).expect("ca");
        let leaf = first_cert(&pki.server_cert_pem, Path::new("leaf")).expect("leaf");
        let parsed = rustls::server::ParsedCertificate::try_from(&leaf).expect("parsed");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            UnixTime::now(),
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
        )
        .expect("chain verifies");
        for name in DEFAULT_SANS
            .iter()
            .copied()
            .chain(["10.96.0.1", "api.example.com"])
        {
            let server_name = ServerName::try_from(name).expect("server name");
            rustls::client::verify_server_name(&parsed, &server_name)
                .unwrap_or_else(|e| panic!("{name} not accepted: {e}"));
        }
    }

    #[test]
    fn adding_a_san_reissues_the_serving_certificate_but_keeps_the_ca() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(data.path(), &[]).expect("create");
        let second = Pki::load_or_create(
            data.path(),
            &["192.168.7.9".to_string(), "Node1.Example".to_string()],
        )
        .expect("reissue");
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.ca_key_pem, second.ca_key_pem);
        assert_eq!(first.admin_token, second.admin_token);
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        let sans = sans_of(&second.server_cert_pem);
        assert!(sans.contains(&"192.168.7.9".to_string()), "{sans:?}");
        assert!(sans.contains(&"node1.example".to_string()), "{sans:?}");

        // Asking for a subset of what the certificate already has changes nothing.
        let third = Pki::load_or_create(data.path(), &["node1.example".to_string()]).expect("load");
        assert_eq!(second.server_cert_pem, third.server_cert_pem);
    }

    #[test]
    fn a_serving_certificate_expiring_within_30_days_is_reissued() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(data.path(), &[]).expect("create");
        write_short_lived_server_cert(data.path(), Duration::from_secs(10 * 24 * 60 * 60));
        let short = fs::read_to_string(pki_dir(&data).join(SERVER_CERT)).expect("read");
        let second = Pki::load_or_create(data.path(), &[]).expect("reissue");
        assert_ne!(second.server_cert_pem, short);
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    }

    #[test]
    fn a_serving_certificate_from_another_ca_is_reissued() {
        let data = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let mine = Pki::load_or_create(data.path(), &[]).expect("create");
        let theirs = Pki::load_or_create(other.path(), &[]).expect("create other");
        fs::write(pki_dir(&data).join(SERVER_CERT), &theirs.server_cert_pem).expect("write");
        fs::write(pki_dir(&data).join(SERVER_KEY), &theirs.server_key_pem).expect("write");
        let again = Pki::load_or_create(data.path(), &[]).expect("reissue");
        assert_eq!(mine.ca_cert_pem, again.ca_cert_pem);
        assert_ne!(again.server_cert_pem, theirs.server_cert_pem);
    }

    #[test]
    fn a_serving_key_that_does_not_match_the_certificate_causes_reissue() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(data.path(), &[]).expect("create");
        let stray = KeyPair::generate().expect("key").serialize_pem();
        fs::write(pki_dir(&data).join(SERVER_KEY), stray).expect("write");
        let again = Pki::load_or_create(data.path(), &[]).expect("reissue");
        assert_ne!(first.server_cert_pem, again.server_cert_pem);
        again
            .server_config()
            .expect("key matches the new certificate");
    }

    #[test]
    fn unparseable_files_give_an_error_naming_the_file() {
        let cases: &[(&str, &str, &str)] = &[
            (CA_CERT, "garbage", CA_CERT),
            (
                CA_CERT,
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                CA_CERT,
            ),
            (
                CA_KEY,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                CA_KEY,
            ),
            (SERVER_CERT, "not a certificate", SERVER_CERT),
            (SERVER_KEY, "not a key", SERVER_KEY),
            (ADMIN_TOKEN, "   \n", ADMIN_TOKEN),
            (NODE_TOKEN, "two words", NODE_TOKEN),
            (ADMIN_TOKEN, "\u{ff}\u{fe}", ADMIN_TOKEN),
        ];
        for (file, contents, named) in cases {
            let data = tempfile::tempdir().expect("tempdir");
            Pki::load_or_create(data.path(), &[]).expect("create");
            fs::write(pki_dir(&data).join(file), contents).expect("corrupt");
            let err = Pki::load_or_create(data.path(), &[])
                .expect_err(&format!("{file} = {contents:?} must fail"));
            let message = err.to_string();
            assert!(message.contains(named), "{file} = {contents:?}: {message}");
        }
    }

    #[test]
    fn a_non_ca_certificate_in_ca_crt_is_rejected() {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("create");
        fs::write(pki_dir(&data).join(CA_CERT), &pki.server_cert_pem).expect("write");
        fs::write(pki_dir(&data).join(CA_KEY), &pki.server_key_pem).expect("write");
        let err = Pki::load_or_create(data.path(), &[]).expect_err("must fail");
        assert!(err.to_string().contains(CA_CERT), "{err}");
        assert!(err.to_string().contains("not a CA"), "{err}");
    }

    #[test]
    fn a_ca_key_belonging_to_another_ca_is_rejected() {
        let data = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        Pki::load_or_create(data.path(), &[]).expect("create");
        let theirs = Pki::load_or_create(other.path(), &[]).expect("create other");
        fs::write(pki_dir(&data).join(CA_KEY), &theirs.ca_key_pem).expect("write");
        let err = Pki::load_or_create(data.path(), &[]).expect_err("must fail");
        assert!(err.to_string().contains(CA_KEY), "{err}");
    }

    #[test]
    fn a_missing_ca_key_is_an_error_but_a_missing_ca_certificate_starts_a_new_ca() {
        let data = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(data.path(), &[]).expect("create");

        fs::remove_file(pki_dir(&data).join(CA_KEY)).expect("remove key");
        let err = Pki::load_or_create(data.path(), &[]).expect_err("must fail");
        assert!(err.to_string().contains(CA_KEY), "{err}");

        fs::remove_file(pki_dir(&data).join(CA_CERT)).expect("remove cert");
        let second = Pki::load_or_create(data.path(), &[]).expect("new CA");
        assert_ne!(first.ca_cert_pem, second.ca_cert_pem);
        // The old serving certificate no longer chains to the CA, so it is replaced too.
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        assert_eq!(first.admin_token, second.admin_token);
    }

    #[test]
    fn missing_tokens_are_created_and_existing_ones_are_kept_trimmed() {
        let data = tempfile::tempdir().expect("tempdir");
        Pki::load_or_create(data.path(), &[]).expect("create");
        fs::write(pki_dir(&data).join(ADMIN_TOKEN), "my-own-token\n").expect("write");
        fs::remove_file(pki_dir(&data).join(NODE_TOKEN)).expect("remove");
        let pki = Pki::load_or_create(data.path(), &[]).expect("load");
        assert_eq!(pki.admin_token, "my-own-token");
        assert_eq!(pki.node_token.len(), 64);
    }

    #[test]
    fn keys_and_tokens_are_private_and_certificates_are_readable() {
        let data = tempfile::tempdir().expect("tempdir");
        Pki::load_or_create(data.path(), &[]).expect("create");
        let dir = pki_dir(&data);
        assert_eq!(mode(&dir), 0o700);
        for (file, want) in [
            (CA_CERT, 0o644),
            (CA_KEY, 0o600),
            (SERVER_CERT, 0o644),
            (SERVER_KEY, 0o600),
            (ADMIN_TOKEN, 0o600),
            (NODE_TOKEN, 0o600),
        ] {
            assert_eq!(mode(&dir.join(file)), want, "{file}");
        }
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_world_readable_secret_is_tightened_on_load() {
        let data = tempfile::tempdir().expect("tempdir");
        Pki::load_or_create(data.path(), &[]).expect("create");
        let token = pki_dir(&data).join(ADMIN_TOKEN);
        fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).expect("chmod");
        Pki::load_or_create(data.path(), &[]).expect("load");
        assert_eq!(mode(&token), 0o600);
    }

    #[test]
    fn invalid_extra_sans_are_rejected() {
        for bad in [
            "bad name",
            "-leading.example",
            "a..b",
            "under_score.example",
        ] {
            let data = tempfile::tempdir().expect("tempdir");
            let err = Pki::load_or_create(data.path(), &[bad.to_string()]).expect_err(bad);
            assert!(matches!(err, Error::InvalidSan { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_keys_and_tokens() {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("create");
        let shown = format!("{pki:?}");
        assert!(!shown.contains(&pki.admin_token));
        assert!(!shown.contains("PRIVATE KEY"));
    }

    #[test]
    fn kubeconfig_has_the_cluster_user_and_context() {
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("create");
        let path = data.path().join("kube").join("config");
        pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
            .expect("write");
        assert_eq!(mode(&path), 0o600);

        let doc: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(&path).expect("read")).expect("yaml");
        assert_eq!(doc["apiVersion"].as_str(), Some("v1"));
        assert_eq!(doc["kind"].as_str(), Some("Config"));
        assert_eq!(doc["current-context"].as_str(), Some("tinykube"));
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"].as_str(), Some("tinykube"));
        assert_eq!(
            cluster["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
        let ca = cluster["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("ca data");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ca)
            .expect("base64");
        assert_eq!(decoded, pki.ca_cert_pem.as_bytes());
        assert_eq!(doc["users"][0]["name"].as_str(), Some("admin"));
        assert_eq!(
            doc["users"][0]["user"]["token"].as_str(),
            Some(pki.admin_token.as_str())
        );
        assert_eq!(doc["contexts"][0]["name"].as_str(), Some("tinykube"));
        assert_eq!(
            doc["contexts"][0]["context"]["cluster"].as_str(),
            Some("tinykube")
        );
        assert_eq!(
            doc["contexts"][0]["context"]["user"].as_str(),
            Some("admin")
        );
    }

    #[test]
    fn kubectl_reads_the_written_kubeconfig() {
        let Ok(kubectl) = which_kubectl() else {
            eprintln!("kubectl not on PATH; skipping");
            return;
        };
        let data = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(data.path(), &[]).expect("create");
        let path = data.path().join("kubeconfig");
        pki.write_kubeconfig(&path, "https://127.0.0.1:6443")
            .expect("write");
        let query = |jsonpath: &str| {
            let out = Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&path)
                .args([
                    "config",
                    "view",
                    "--raw",
                    "-o",
                    &format!("jsonpath={jsonpath}"),
                ])
                .output()
                .expect("run kubectl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(query("{.users[0].user.token}"), pki.admin_token);
        assert_eq!(query("{.current-context}"), "tinykube");
        assert_eq!(
            query("{.clusters[0].cluster.server}"),
            "https://127.0.0.1:6443"
        );
        let ca = query("{.clusters[0].cluster.certificate-authority-data}");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .expect("base64"),
            pki.ca_cert_pem.as_bytes()
        );
    }

    fn which_kubectl() -> Result<PathBuf, ()> {
        let path = std::env::var_os("PATH").ok_or(())?;
        std::env::split_paths(&path)
            .map(|d| d.join("kubectl"))
            .find(|p| p.is_file())
            .ok_or(())
    }
}
