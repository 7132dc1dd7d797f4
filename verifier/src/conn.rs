//! Connection settings the way libpq (and so psql) finds them: the `--db` connection string
//! (key=value conninfo, a `postgresql://` URI, or a bare database name), then the service it
//! names (`service=`, or `PGSERVICE`) from `PGSERVICEFILE` / `~/.pg_service.conf` or the
//! system's `pg_service.conf`, then the `PG*` environment variables, then libpq's defaults;
//! the password, when none was given, from `PGPASSFILE` / `~/.pgpass`. TLS follows `sslmode`
//! (disable, allow, prefer, require, verify-ca, verify-full) and `sslrootcert`, with OpenSSL,
//! as libpq does it.
//!
//! [`resolve`] is pure apart from reading the service and password files: the tests give it
//! an environment of their own.

use anyhow::{anyhow, bail, Context, Result};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use postgres::config::{SslMode, TargetSessionAttrs};
use postgres::{Client, Config};
use postgres_openssl::MakeTlsConnector;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debian's libpq: where the server's Unix socket is when no host is given.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
/// Debian's libpq: the directory of the system-wide pg_service.conf (`PGSYSCONFDIR`).
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";
const DEFAULT_PORT: &str = "5432";
/// When neither the connection string nor `PGCONNECT_TIMEOUT` sets one (libpq waits forever;
/// an unattended verifier should not).
const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;

/// The connection options worm-verify understands, with their environment variables.
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("service", Some("PGSERVICE")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
];

fn known(key: &str) -> bool {
    KEYWORDS.iter().any(|(k, _)| *k == key)
}

/// What the settings are resolved from besides the connection string.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Environment variables (only the ones read here matter).
    pub vars: BTreeMap<String, String>,
    /// The home directory (`~/.pgpass`, `~/.pg_service.conf`, `~/.postgresql/`).
    pub home: Option<PathBuf>,
    /// The operating-system user name (the default user).
    pub os_user: Option<String>,
}

impl Env {
    /// This process's environment.
    pub fn from_process() -> Env {
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PG"))
            .collect();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let os_user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        Env {
            vars,
            home,
            os_user,
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn home_file(&self, rel: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(rel))
    }
}

/// Where a setting came from (for messages and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    ConnString,
    Service,
    Environment,
    Default,
}

/// The resolved settings: every option that has a value, with where it came from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, (String, Source)>,
    /// The password file consulted (when no password was given), for messages.
    passfile: Option<PathBuf>,
}

impl Settings {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    #[cfg(test)]
    pub fn source(&self, key: &str) -> Option<Source> {
        self.values.get(key).map(|(_, s)| *s)
    }

    fn set_if_unset(&mut self, key: &str, value: &str, source: Source) {
        self.values
            .entry(key.to_owned())
            .or_insert_with(|| (value.to_owned(), source));
    }
}

// --- parsing the connection string ---------------------------------------------------------

/// The options of a connection string: key=value conninfo, a postgresql:// (or postgres://)
/// URI, or (neither: no `=`) a database name, as libpq's `dbname` expansion reads it.
pub fn parse_conn_string(s: &str) -> Result<Vec<(String, String)>> {
    let pairs = if let Some(rest) = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        parse_uri(rest).with_context(|| "invalid connection URI".to_owned())?
    } else if s.contains('=') {
        parse_keyword_value(s)?
    } else if s.trim().is_empty() {
        Vec::new()
    } else {
        vec![("dbname".to_owned(), s.to_owned())]
    };
    for (k, _) in &pairs {
        if !known(k) {
            bail!(
                "invalid connection option \"{k}\" (worm-verify understands: {})",
                KEYWORDS
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(pairs)
}

/// libpq's key = value syntax: values may be single-quoted; a backslash escapes the next
/// character (in quoted and unquoted values).
fn parse_keyword_value(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            bail!("missing \"=\" after \"{key}\" in connection info string");
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                bail!("unterminated quoted string in connection info string");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("invalid percent-encoded token in \"{s}\""))?;
            if hex == 0 {
                bail!("forbidden value %00 in percent-encoded value \"{s}\"");
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| anyhow!("\"{s}\" does not decode to UTF-8"))
}

/// `[user[:password]@][host][:port][,...][/dbname][?param=value&...]` (after the scheme).
fn parse_uri(rest: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (before_query, None),
    };
    let hostlist = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".to_owned(), percent_decode(user)?));
            }
            if let Some(p) = password {
                out.push(("password".to_owned(), percent_decode(p)?));
            }
            hosts
        }
        None => authority,
    };
    if !hostlist.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostlist.split(',') {
            let (host, port) = if let Some(v6) = spec.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| anyhow!("missing \"]\" in IPv6 host address \"{spec}\""))?;
                let port = match after {
                    "" => "",
                    p => p
                        .strip_prefix(':')
                        .ok_or_else(|| anyhow!("unexpected \"{p}\" after IPv6 host \"{h}\""))?,
                };
                (h.to_owned(), port)
            } else {
                match spec.split_once(':') {
                    Some((h, p)) => (percent_decode(h)?, p),
                    None => (percent_decode(spec)?, ""),
                }
            };
            hosts.push(host);
            ports.push(port.to_owned());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".to_owned(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_owned(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".to_owned(), percent_decode(db)?));
    }
    if let Some(q) = query {
        for kv in q.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                anyhow!("missing key/value separator \"=\" in URI query \"{kv}\"")
            })?;
            let (k, v) = (percent_decode(k)?, percent_decode(v)?);
            // libpq's compatibility with JDBC URIs.
            if k == "ssl" && v == "true" {
                out.push(("sslmode".to_owned(), "require".to_owned()));
            } else {
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

// --- the service file ----------------------------------------------------------------------

/// The options of `[service]` in a pg_service.conf (None: the file or the section is absent).
fn service_from_file(path: &Path, service: &str) -> Result<Option<Vec<(String, String)>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow!(
                "cannot read service file \"{}\": {e}",
                path.display()
            ))
        }
    };
    let mut in_section = false;
    let mut found = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found && in_section {
                break;
            }
            in_section = name.strip_suffix(']').map(str::trim) == Some(service);
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            anyhow!(
                "syntax error in service file \"{}\", line {}",
                path.display(),
                n + 1
            )
        })?;
        let (k, v) = (k.trim(), v.trim());
        if k == "service" {
            bail!(
                "nested service specifications not supported in service file \"{}\", line {}",
                path.display(),
                n + 1
            );
        }
        if !known(k) {
            bail!(
                "syntax error in service file \"{}\", line {}: unknown option \"{k}\"",
                path.display(),
                n + 1
            );
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(found.then_some(out))
}

/// The user's service file, then the system's, as libpq searches them.
fn service_options(env: &Env, service: &str) -> Result<Vec<(String, String)>> {
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".pg_service.conf"));
    let sys_file = PathBuf::from(env.var("PGSYSCONFDIR").unwrap_or(DEFAULT_SYSCONFDIR))
        .join("pg_service.conf");
    for file in user_file.iter().chain(std::iter::once(&sys_file)) {
        if let Some(opts) = service_from_file(file, service)? {
            return Ok(opts);
        }
    }
    bail!(
        "definition of service \"{service}\" not found (looked in {}{})",
        user_file
            .map(|f| format!("{} and ", f.display()))
            .unwrap_or_default(),
        sys_file.display()
    )
}

// --- resolution ----------------------------------------------------------------------------

/// Every setting, from the connection string, the service, the environment and the defaults,
/// in that order of precedence (libpq's).
pub fn resolve(conn: Option<&str>, env: &Env) -> Result<Settings> {
    let mut s = Settings::default();
    for (k, v) in parse_conn_string(conn.unwrap_or(""))? {
        // A later repetition of a keyword wins, as in libpq.
        s.values.insert(k, (v, Source::ConnString));
    }
    let service = s
        .get("service")
        .map(str::to_owned)
        .or_else(|| env.var("PGSERVICE").map(str::to_owned));
    if let Some(service) = service.filter(|v| !v.is_empty()) {
        for (k, v) in service_options(env, &service)? {
            s.set_if_unset(&k, &v, Source::Service);
        }
    }
    for (k, var) in KEYWORDS {
        if let Some(v) = var.and_then(|var| env.var(var)) {
            s.set_if_unset(k, v, Source::Environment);
        }
    }
    // Empty means "not given" for these (libpq uses its default).
    for k in ["host", "hostaddr", "port", "user", "dbname", "sslmode"] {
        if s.get(k).is_some_and(str::is_empty) {
            s.values.remove(k);
        }
    }
    if s.get("host").is_none() && s.get("hostaddr").is_none() {
        s.set_if_unset("host", DEFAULT_SOCKET_DIR, Source::Default);
    }
    s.set_if_unset("port", DEFAULT_PORT, Source::Default);
    if s.get("user").is_none() {
        let user = env
            .os_user
            .clone()
            .ok_or_else(|| anyhow!("no user name: give user= in --db, or set PGUSER"))?;
        s.set_if_unset("user", &user, Source::Default);
    }
    let user = s.get("user").unwrap_or_default().to_owned();
    s.set_if_unset("dbname", &user, Source::Default);
    s.set_if_unset("sslmode", "prefer", Source::Default);
    let fallback = s
        .get("fallback_application_name")
        .unwrap_or("worm-verify")
        .to_owned();
    s.set_if_unset("application_name", &fallback, Source::Default);
    for (k, file) in [
        ("sslrootcert", ".postgresql/root.crt"),
        ("sslcert", ".postgresql/postgresql.crt"),
        ("sslkey", ".postgresql/postgresql.key"),
    ] {
        if let Some(p) = env.home_file(file) {
            s.set_if_unset(k, &p.to_string_lossy(), Source::Default);
        }
    }
    if s.get("password").is_none() {
        s.passfile = s
            .get("passfile")
            .map(PathBuf::from)
            .or_else(|| env.home_file(".pgpass"));
    }
    validate(&s)?;
    Ok(s)
}

fn validate(s: &Settings) -> Result<()> {
    match s.get("sslmode").unwrap_or("prefer") {
        "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full" => {}
        m => bail!("invalid sslmode value: \"{m}\" (disable, allow, prefer, require, verify-ca or verify-full)"),
    }
    if s.get("sslrootcert") == Some("system") && s.get("sslmode") != Some("verify-full") {
        bail!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            s.get("sslmode").unwrap_or_default()
        );
    }
    if let Some(t) = s.get("connect_timeout") {
        t.trim().parse::<i64>().map_err(|_| {
            anyhow!("invalid integer value \"{t}\" for connection option \"connect_timeout\"")
        })?;
    }
    match s.get("target_session_attrs") {
        None | Some("any") | Some("read-write") => {}
        Some(v) => bail!("invalid target_session_attrs value: \"{v}\" (any or read-write)"),
    }
    Ok(())
}

/// One server to try: a host (name, or a Unix socket directory), its address and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Option<String>,
    pub hostaddr: Option<String>,
    pub port: u16,
}

impl Target {
    pub fn is_socket(&self) -> bool {
        self.host.as_deref().is_some_and(|h| h.starts_with('/')) && self.hostaddr.is_none()
    }

    /// The host name a password file line is matched against (libpq's rule: the default
    /// socket directory, or no host at all, is "localhost").
    fn pgpass_host(&self) -> String {
        match (&self.host, &self.hostaddr) {
            (Some(h), _) if h == DEFAULT_SOCKET_DIR => "localhost".to_owned(),
            (Some(h), _) => h.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => "localhost".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match (&self.host, &self.hostaddr) {
            (Some(h), _) if self.is_socket() => {
                format!("socket \"{h}/.s.PGSQL.{}\"", self.port)
            }
            (Some(h), Some(a)) => format!("host \"{h}\" ({a}), port {}", self.port),
            (Some(h), None) => format!("host \"{h}\", port {}", self.port),
            (None, Some(a)) => format!("address {a}, port {}", self.port),
            (None, None) => format!("port {}", self.port),
        }
    }
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.map(|v| v.split(',').map(|x| x.trim().to_owned()).collect())
        .unwrap_or_default()
}

/// The servers to try, in order (libpq: comma-separated host, hostaddr and port lists; one
/// port for every host, or one each).
pub fn targets(s: &Settings) -> Result<Vec<Target>> {
    let hosts = split_list(s.get("host"));
    let addrs = split_list(s.get("hostaddr"));
    let ports = split_list(s.get("port"));
    let n = hosts.len().max(addrs.len()).max(1);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        bail!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        );
    }
    if ports.len() > 1 && ports.len() != n {
        bail!("could not match {} port numbers to {n} hosts", ports.len());
    }
    (0..n)
        .map(|i| {
            let nonempty = |v: Option<&String>| v.filter(|x| !x.is_empty()).cloned();
            let port_text = if ports.len() == 1 {
                ports.first()
            } else {
                ports.get(i)
            };
            let port_text = port_text
                .filter(|p| !p.is_empty())
                .map_or(DEFAULT_PORT, String::as_str);
            let port: u16 = port_text
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("invalid port number: \"{port_text}\""))?;
            let mut host = nonempty(hosts.get(i));
            let hostaddr = nonempty(addrs.get(i));
            if host.is_none() && hostaddr.is_none() {
                host = Some(DEFAULT_SOCKET_DIR.to_owned());
            }
            Ok(Target {
                host,
                hostaddr,
                port,
            })
        })
        .collect()
}

// --- the password file ---------------------------------------------------------------------

/// Splits a .pgpass line into its fields (`\` escapes `:` and `\`).
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(f) = fields.last_mut() {
                        f.push(n);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// The password for (host, port, dbname, user) in a password file's text: the first
/// matching line (`*` matches anything).
pub fn pgpass_lookup(
    text: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f = pgpass_fields(line);
        if f.len() != 5 {
            continue;
        }
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        if m(&f[0], host) && m(&f[1], port) && m(&f[2], dbname) && m(&f[3], user) {
            return Some(f[4].clone());
        }
    }
    None
}

/// The password file's text, when it may be used: libpq ignores (with a warning) a file
/// others may read or write, and anything that is not a plain file.
fn read_passfile(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        eprintln!(
            "worm-verify: WARNING: password file \"{}\" is not a plain file",
            path.display()
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "worm-verify: WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

impl Settings {
    /// The password for `target`: given (connection string, service or PGPASSWORD), or from
    /// the password file.
    pub fn password_for(&self, target: &Target) -> Option<String> {
        if let Some(p) = self.get("password") {
            return Some(p.to_owned());
        }
        let text = read_passfile(self.passfile.as_ref()?)?;
        pgpass_lookup(
            &text,
            &target.pgpass_host(),
            &target.port.to_string(),
            self.get("dbname").unwrap_or_default(),
            self.get("user").unwrap_or_default(),
        )
    }

    /// `sslrootcert` when it names a file that exists (or "system").
    fn root_cert(&self) -> Option<&str> {
        let r = self.get("sslrootcert")?;
        (r == "system" || Path::new(r).exists()).then_some(r)
    }
}

// --- connecting ----------------------------------------------------------------------------

/// The TLS connector for the settings' sslmode, as libpq sets up OpenSSL: the server's
/// certificate is verified against `sslrootcert` for verify-ca and verify-full (the file must
/// exist), and for require and prefer when that file exists (libpq's compatibility rule); the
/// host name is checked only for verify-full. `sslcert`/`sslkey`: a client certificate when
/// both files exist.
fn tls_connector(s: &Settings) -> Result<MakeTlsConnector> {
    let mode = s.get("sslmode").unwrap_or("prefer");
    let root = s.root_cert();
    let verify = matches!(mode, "verify-ca" | "verify-full") || root.is_some();
    let mut b = SslConnector::builder(SslMethod::tls_client()).context("cannot set up OpenSSL")?;
    if verify {
        match root {
            Some("system") => {
                b.set_default_verify_paths()
                    .context("cannot load the system's trusted certificates")?;
            }
            Some(file) => {
                let pem = std::fs::read(file)
                    .with_context(|| format!("cannot read root certificate file \"{file}\""))?;
                let certs = X509::stack_from_pem(&pem).with_context(|| {
                    format!("could not read root certificate file \"{file}\"")
                })?;
                // Only these roots: not the system's as well.
                let mut store = X509StoreBuilder::new().context("cannot set up OpenSSL")?;
                for c in certs {
                    store.add_cert(c).context("cannot use the root certificate")?;
                }
                b.set_cert_store(store.build());
            }
            None => bail!(
                "root certificate file \"{}\" does not exist: either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification",
                s.get("sslrootcert").unwrap_or("~/.postgresql/root.crt")
            ),
        }
        b.set_verify(SslVerifyMode::PEER);
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }
    if let (Some(cert), Some(key)) = (s.get("sslcert"), s.get("sslkey")) {
        if Path::new(cert).exists() {
            b.set_certificate_chain_file(cert)
                .with_context(|| format!("could not load client certificate \"{cert}\""))?;
            b.set_private_key_file(key, SslFiletype::PEM)
                .with_context(|| format!("could not load private key file \"{key}\""))?;
        }
    }
    let mut connector = MakeTlsConnector::new(b.build());
    if mode != "verify-full" {
        connector.set_callback(|cfg, _domain| {
            cfg.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(connector)
}

/// The client's config for one target.
fn config_for(s: &Settings, t: &Target) -> Result<Config> {
    let mut c = Config::new();
    if let Some(h) = &t.host {
        c.host(h);
    }
    if let Some(a) = &t.hostaddr {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| anyhow!("could not parse network address \"{a}\""))?;
        c.hostaddr(ip);
    }
    c.port(t.port);
    c.user(s.get("user").unwrap_or_default());
    c.dbname(s.get("dbname").unwrap_or_default());
    if let Some(p) = s.password_for(t) {
        c.password(p);
    }
    if let Some(o) = s.get("options") {
        c.options(o);
    }
    if let Some(a) = s.get("application_name") {
        c.application_name(a);
    }
    let timeout = match s.get("connect_timeout") {
        // libpq: zero or negative waits forever, and at least 2 seconds.
        Some(t) => match t.trim().parse::<i64>().unwrap_or(0) {
            n if n <= 0 => None,
            n => Some(Duration::from_secs(n.max(2).unsigned_abs())),
        },
        None => Some(Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS)),
    };
    if let Some(t) = timeout {
        c.connect_timeout(t);
    }
    if s.get("target_session_attrs") == Some("read-write") {
        c.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    // libpq never uses TLS over a Unix socket.
    c.ssl_mode(match s.get("sslmode").unwrap_or("prefer") {
        _ if t.is_socket() => SslMode::Disable,
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok(c)
}

/// Opens a connection: each target in turn until one accepts.
pub fn open(s: &Settings) -> Result<Client> {
    let targets = targets(s)?;
    let mut errors = Vec::new();
    for t in &targets {
        let cfg = config_for(s, t)?;
        let tls = tls_connector(s)?;
        match cfg.connect(tls) {
            Ok(c) => return Ok(c),
            Err(e) => errors.push(format!("{}: {}", t.describe(), explain(s, t, e))),
        }
    }
    Err(anyhow!(
        "cannot connect to the database as user \"{}\", database \"{}\": {}",
        s.get("user").unwrap_or_default(),
        s.get("dbname").unwrap_or_default(),
        errors.join("; ")
    ))
}

/// A connection error as one line, with advice where the driver's own words are terse.
fn explain(s: &Settings, t: &Target, e: postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                let more = inner.to_string();
                if !msg.contains(&more) {
                    msg.push_str(&format!(": {more}"));
                }
                src = inner.source();
            }
            msg
        }
    };
    if text.contains("password missing") {
        let file = s
            .passfile
            .as_ref()
            .map_or("~/.pgpass".to_owned(), |p| p.display().to_string());
        format!(
            "the server asks for a password and none was given: add a line for {}:{}:{}:{} to the password file {file} (mode 0600), or set PGPASSWORD",
            t.pgpass_host(),
            t.port,
            s.get("dbname").unwrap_or_default(),
            s.get("user").unwrap_or_default()
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)], home: Option<&Path>) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            home: home.map(Path::to_path_buf),
            os_user: Some("osuser".into()),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wv-conn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn write(path: &Path, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn keyword_value_strings() {
        let p = parse_conn_string(
            r"host=/tmp  port = 5433 dbname='my db' user=o\'neil password='a\'b\\c'",
        )
        .expect("valid");
        assert_eq!(
            p,
            vec![
                ("host".into(), "/tmp".into()),
                ("port".into(), "5433".into()),
                ("dbname".into(), "my db".into()),
                ("user".into(), "o'neil".into()),
                ("password".into(), r"a'b\c".into()),
            ]
        );
        assert!(parse_conn_string("host=x bogus=1").is_err());
        assert!(parse_conn_string("host=x port").is_err());
        assert!(parse_conn_string("dbname='open").is_err());
        // Neither a URI nor key=value: a database name.
        assert_eq!(
            parse_conn_string("app").expect("valid"),
            vec![("dbname".into(), "app".into())]
        );
        assert!(parse_conn_string("").expect("valid").is_empty());
    }

    #[test]
    fn uris() {
        let p = parse_conn_string(
            "postgresql://aud%40x:s%3Acret@db1.example:6000,[::1]:6001,db3/my%20db?sslmode=verify-full&application_name=a",
        )
        .expect("valid");
        let m: BTreeMap<_, _> = p.into_iter().collect();
        assert_eq!(m["user"], "aud@x");
        assert_eq!(m["password"], "s:cret");
        assert_eq!(m["host"], "db1.example,::1,db3");
        assert_eq!(m["port"], "6000,6001,");
        assert_eq!(m["dbname"], "my db");
        assert_eq!(m["sslmode"], "verify-full");
        let p =
            parse_conn_string("postgres://%2Fvar%2Frun%2Fpostgresql/app?ssl=true").expect("valid");
        let m: BTreeMap<_, _> = p.into_iter().collect();
        assert_eq!(m["host"], "/var/run/postgresql");
        assert_eq!(m["sslmode"], "require");
        assert!(parse_conn_string("postgresql://")
            .expect("valid")
            .is_empty());
        assert!(parse_conn_string("postgresql://h/db?nope=1").is_err());
        assert!(parse_conn_string("postgresql://h/db?x").is_err());
    }

    #[test]
    fn environment_fills_what_the_string_leaves_out() {
        let e = env(
            &[
                ("PGHOST", "envhost"),
                ("PGPORT", "6543"),
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
                ("PGSSLMODE", "require"),
                ("PGAPPNAME", "nightly"),
                ("PGCONNECT_TIMEOUT", "3"),
            ],
            None,
        );
        let s = resolve(None, &e).expect("resolves");
        assert_eq!(s.get("host"), Some("envhost"));
        assert_eq!(s.get("port"), Some("6543"));
        assert_eq!(s.get("user"), Some("envuser"));
        assert_eq!(s.get("dbname"), Some("envdb"));
        assert_eq!(s.get("sslmode"), Some("require"));
        assert_eq!(s.get("application_name"), Some("nightly"));
        assert_eq!(s.source("host"), Some(Source::Environment));
        let s = resolve(Some("host=strhost dbname=strdb"), &e).expect("resolves");
        assert_eq!(s.get("host"), Some("strhost"));
        assert_eq!(s.source("host"), Some(Source::ConnString));
        assert_eq!(s.get("dbname"), Some("strdb"));
        assert_eq!(s.get("user"), Some("envuser"));
        // Nothing at all: libpq's defaults.
        let s = resolve(None, &env(&[], None)).expect("resolves");
        assert_eq!(s.get("host"), Some(DEFAULT_SOCKET_DIR));
        assert_eq!(s.get("port"), Some("5432"));
        assert_eq!(s.get("user"), Some("osuser"));
        assert_eq!(s.get("dbname"), Some("osuser"));
        assert_eq!(s.get("sslmode"), Some("prefer"));
        assert_eq!(s.get("application_name"), Some("worm-verify"));
        assert!(resolve(Some("sslmode=sometimes"), &env(&[], None)).is_err());
        assert!(resolve(None, &env(&[("PGCONNECT_TIMEOUT", "soon")], None)).is_err());
        assert!(resolve(Some("sslrootcert=system sslmode=require"), &env(&[], None)).is_err());
    }

    #[test]
    fn service_file_between_string_and_environment() {
        let d = tmp("svc");
        let f = d.join("services.conf");
        write(
            &f,
            "# audit services\n[other]\nhost=nope\n\n[audit]\nhost = svchost\nport=7000\ndbname=svcdb\nsslmode=verify-full\n",
            0o644,
        );
        let e = env(
            &[
                ("PGSERVICEFILE", f.to_str().expect("utf8")),
                ("PGPORT", "6543"),
                ("PGUSER", "envuser"),
                ("PGHOST", "envhost"),
                ("PGSYSCONFDIR", d.to_str().expect("utf8")),
            ],
            None,
        );
        let s = resolve(Some("service=audit dbname=strdb"), &e).expect("resolves");
        assert_eq!(s.get("host"), Some("svchost"));
        assert_eq!(s.source("host"), Some(Source::Service));
        assert_eq!(s.get("port"), Some("7000"));
        assert_eq!(s.get("dbname"), Some("strdb"));
        assert_eq!(s.get("user"), Some("envuser"));
        assert_eq!(s.get("sslmode"), Some("verify-full"));
        // PGSERVICE names it when the string does not.
        let mut e2 = e.clone();
        e2.vars.insert("PGSERVICE".into(), "audit".into());
        let s = resolve(None, &e2).expect("resolves");
        assert_eq!(s.get("dbname"), Some("svcdb"));
        // ~/.pg_service.conf without PGSERVICEFILE; the system file after it.
        let home = tmp("svchome");
        write(&home.join(".pg_service.conf"), "[mine]\nport=7100\n", 0o600);
        write(&d.join("pg_service.conf"), "[sys]\nport=7200\n", 0o644);
        let e3 = env(&[("PGSYSCONFDIR", d.to_str().expect("utf8"))], Some(&home));
        assert_eq!(
            resolve(Some("service=mine"), &e3).expect("ok").get("port"),
            Some("7100")
        );
        assert_eq!(
            resolve(Some("service=sys"), &e3).expect("ok").get("port"),
            Some("7200")
        );
        let err = resolve(Some("service=none"), &e3).unwrap_err().to_string();
        assert!(
            err.contains("definition of service \"none\" not found"),
            "{err}"
        );
        write(&f, "[bad]\nservice=x\n", 0o644);
        assert!(resolve(Some("service=bad"), &e).is_err());
        write(&f, "[bad]\nfrobnicate=1\n", 0o644);
        assert!(resolve(Some("service=bad"), &e).is_err());
        let _ = std::fs::remove_dir_all(&d);
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn pgpass_lines() {
        let text = "# comment\nother:*:*:*:no\nlocalhost:5432:app:aud:pw1\n*:*:*:aud:pw\\:2\\\\x\nh\\:x:1:*:*:pw3\n";
        assert_eq!(
            pgpass_lookup(text, "localhost", "5432", "app", "aud").as_deref(),
            Some("pw1")
        );
        assert_eq!(
            pgpass_lookup(text, "localhost", "5433", "app", "aud").as_deref(),
            Some("pw:2\\x")
        );
        assert_eq!(
            pgpass_lookup(text, "h:x", "1", "d", "u").as_deref(),
            Some("pw3")
        );
        assert_eq!(pgpass_lookup(text, "db", "5432", "app", "bob"), None);
        // A password containing ':' after the fourth field stays whole.
        assert_eq!(
            pgpass_lookup("*:*:*:*:a:b", "h", "1", "d", "u").as_deref(),
            Some("a:b")
        );
    }

    #[test]
    fn password_precedence_and_file_rules() {
        let home = tmp("pass");
        let pass = home.join(".pgpass");
        write(
            &pass,
            "localhost:5432:db:aud:frompass\n127.0.0.1:*:*:aud:tcppass\n",
            0o600,
        );
        let e = env(&[("PGUSER", "aud"), ("PGDATABASE", "db")], Some(&home));
        let s = resolve(None, &e).expect("resolves");
        let t = targets(&s).expect("targets");
        assert_eq!(t.len(), 1);
        // The default socket directory matches "localhost".
        assert_eq!(s.password_for(&t[0]).as_deref(), Some("frompass"));
        let s = resolve(Some("host=127.0.0.1"), &e).expect("resolves");
        assert_eq!(
            s.password_for(&targets(&s).expect("t")[0]).as_deref(),
            Some("tcppass")
        );
        // PGPASSWORD and the string come first.
        let mut e2 = e.clone();
        e2.vars.insert("PGPASSWORD".into(), "fromenv".into());
        let s = resolve(None, &e2).expect("resolves");
        assert_eq!(
            s.password_for(&targets(&s).expect("t")[0]).as_deref(),
            Some("fromenv")
        );
        let s = resolve(Some("password=fromstring"), &e2).expect("resolves");
        assert_eq!(
            s.password_for(&targets(&s).expect("t")[0]).as_deref(),
            Some("fromstring")
        );
        // PGPASSFILE / passfile= name another file.
        let other = home.join("other.pgpass");
        write(&other, "*:*:*:*:fromother\n", 0o600);
        let mut e3 = e.clone();
        e3.vars
            .insert("PGPASSFILE".into(), other.to_string_lossy().into_owned());
        let s = resolve(None, &e3).expect("resolves");
        assert_eq!(
            s.password_for(&targets(&s).expect("t")[0]).as_deref(),
            Some("fromother")
        );
        // A file others may read is ignored, as libpq ignores it.
        write(&pass, "*:*:*:*:open\n", 0o644);
        let s = resolve(None, &e).expect("resolves");
        assert_eq!(s.password_for(&targets(&s).expect("t")[0]), None);
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn host_lists() {
        let e = env(&[], None);
        let s = resolve(Some("host=a,/sock,b port=1,2,3"), &e).expect("resolves");
        let t = targets(&s).expect("targets");
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].host.as_deref(), t[0].port), (Some("a"), 1));
        assert!(t[1].is_socket());
        assert_eq!((t[2].host.as_deref(), t[2].port), (Some("b"), 3));
        let s = resolve(Some("host=a,b port=9"), &e).expect("resolves");
        assert!(targets(&s).expect("targets").iter().all(|t| t.port == 9));
        let s = resolve(Some("host=a,b port=1,2,3"), &e).expect("resolves");
        assert!(targets(&s).is_err());
        let s = resolve(Some("hostaddr=127.0.0.1"), &e).expect("resolves");
        let t = targets(&s).expect("targets");
        assert_eq!(
            (t[0].host.as_deref(), t[0].hostaddr.as_deref()),
            (None, Some("127.0.0.1"))
        );
        assert_eq!(t[0].pgpass_host(), "127.0.0.1");
        let s = resolve(Some("port=0"), &e).expect("resolves");
        assert!(targets(&s).is_err());
    }

    #[test]
    fn tls_modes() {
        let home = tmp("tls");
        let e = env(&[], Some(&home));
        // verify-ca / verify-full need the root certificate file.
        let s = resolve(Some("host=h sslmode=verify-full"), &e).expect("resolves");
        let err = tls_connector(&s).err().expect("refused").to_string();
        assert!(err.contains("root.crt\" does not exist"), "{err}");
        for mode in ["disable", "prefer", "require"] {
            let s = resolve(Some(&format!("host=h sslmode={mode}")), &e).expect("resolves");
            assert!(tls_connector(&s).is_ok(), "{mode}");
        }
        let s = resolve(Some("host=/sock sslmode=require"), &e).expect("resolves");
        let t = targets(&s).expect("targets");
        assert_eq!(
            config_for(&s, &t[0]).expect("config").get_ssl_mode(),
            SslMode::Disable
        );
        let s = resolve(Some("host=h sslmode=require"), &e).expect("resolves");
        let t = targets(&s).expect("targets");
        assert_eq!(
            config_for(&s, &t[0]).expect("config").get_ssl_mode(),
            SslMode::Require
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
