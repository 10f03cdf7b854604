//! Debian's nginx (nginx-light) with the auth-pam module for HTTP Basic and the dav and dav-ext
//! modules for a WebDAV share, on a free loopback port; curl as the HTTP client.
//!
//! Two locations, each with the PAM service a sysadmin would give it: `/files/` (service
//! `nginx`, protocol http in otpd's map) serves a directory read-only, `/dav/` (service `webdav`)
//! is a WebDAV share that takes PROPFIND, PUT and GET. The worker runs as root: pam_unix can only
//! check another user's password when it can read /etc/shadow (a real deployment adds the
//! worker's user to the `shadow` group and to otpd's `trusted_callers`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use super::pam_wrapper;
use super::process::{ServerProcess, start_on_free_port};
use crate::stack::PamConfDir;

/// The real nginx.
pub const NGINX: &str = "/usr/sbin/nginx";
/// Debian's dynamic modules.
const MODULES: &str = "/usr/lib/nginx/modules";
/// The HTTP Basic location and its PAM service.
pub const FILES: &str = "/files/";
/// PAM service of [`FILES`].
pub const FILES_SERVICE: &str = "nginx";
/// The WebDAV location.
pub const DAV: &str = "/dav/";
/// PAM service of [`DAV`].
pub const DAV_SERVICE: &str = "webdav";

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    process: ServerProcess,
    _pam: PamConfDir,
    dir: tempfile::TempDir,
    /// The port on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    /// Starts nginx with `files_stack` as the `nginx` service and `dav_stack` as `webdav`.
    pub fn start(files_stack: &str, dav_stack: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        for sub in ["files", "dav", "tmp"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let pam = pam_wrapper::service_dir();
        pam.service(FILES_SERVICE, files_stack);
        pam.service(DAV_SERVICE, dav_stack);
        let root = dir.path().to_path_buf();
        let config_path = root.join("nginx.conf");
        let log = root.join("nginx.out");
        let (process, port) = start_on_free_port("nginx", |port| {
            fs::write(&config_path, render_config(&root, port)).expect("write nginx.conf");
            let mut command = Command::new(NGINX);
            // -e: the error log before the config is read (it would be /var/log/nginx).
            command
                .arg("-c")
                .arg(&config_path)
                .arg("-p")
                .arg(&root)
                .arg("-e")
                .arg(root.join("error.log"));
            pam_wrapper::wrap(&mut command, pam.path());
            (command, log.clone())
        });
        Nginx {
            process,
            _pam: pam,
            dir,
            port,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The directory served at [`FILES`].
    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    /// The directory shared at [`DAV`].
    pub fn dav_dir(&self) -> PathBuf {
        self.dir.path().join("dav")
    }

    /// nginx's error log (PAM failures are logged there) and its output.
    pub fn log(&self) -> String {
        let errors = fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
        format!("{errors}{}", self.process.log())
    }

    /// Whether the nginx master is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

fn render_config(root: &std::path::Path, port: u16) -> String {
    let root = root.display();
    format!(
        "load_module {MODULES}/ngx_http_auth_pam_module.so;\n\
         load_module {MODULES}/ngx_http_dav_ext_module.so;\n\
         daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         user root;\n\
         pid {root}/nginx.pid;\n\
         error_log {root}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log {root}/access.log;\n\
           client_body_temp_path {root}/tmp/body;\n\
           proxy_temp_path {root}/tmp/proxy;\n\
           fastcgi_temp_path {root}/tmp/fastcgi;\n\
           uwsgi_temp_path {root}/tmp/uwsgi;\n\
           scgi_temp_path {root}/tmp/scgi;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location {FILES} {{\n\
               alias {root}/files/;\n\
               auth_pam \"files\";\n\
               auth_pam_service_name \"{FILES_SERVICE}\";\n\
             }}\n\
             location {DAV} {{\n\
               alias {root}/dav/;\n\
               auth_pam \"dav\";\n\
               auth_pam_service_name \"{DAV_SERVICE}\";\n\
               dav_methods PUT DELETE MKCOL COPY MOVE;\n\
               dav_ext_methods PROPFIND OPTIONS;\n\
               create_full_put_path on;\n\
             }}\n\
           }}\n\
         }}\n"
    )
}

/// One HTTP request made with curl.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    method: String,
    url: String,
    credentials: Option<(String, String)>,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
    source: Option<String>,
}

/// The answer: status (0 when there was none, e.g. the connection broke) and body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The HTTP status, 0 when curl got no answer.
    pub status: u16,
    /// The body.
    pub body: String,
    /// curl's error message, if any.
    pub stderr: String,
}

impl HttpRequest {
    /// `method` on `url`, no credentials yet.
    pub fn new(method: &str, url: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_string(),
            url: url.to_string(),
            credentials: None,
            headers: Vec::new(),
            body: None,
            source: None,
        }
    }

    /// HTTP Basic credentials.
    pub fn basic(mut self, user: &str, secret: &str) -> HttpRequest {
        self.credentials = Some((user.to_string(), secret.to_string()));
        self
    }

    /// An extra header line (`Name: value`).
    pub fn header(mut self, line: &str) -> HttpRequest {
        self.headers.push(line.to_string());
        self
    }

    /// A request body.
    pub fn body(mut self, body: &[u8]) -> HttpRequest {
        self.body = Some(body.to_vec());
        self
    }

    /// Connects from this loopback address (e.g. `127.0.0.2`), which the server sees as the
    /// remote host.
    pub fn from_address(mut self, address: &str) -> HttpRequest {
        self.source = Some(address.to_string());
        self
    }

    /// Sends it.
    pub fn send(&self) -> HttpReply {
        let scratch = tempfile::tempdir().expect("tempdir");
        let body_out = scratch.path().join("body");
        let mut curl = Command::new("curl");
        curl.args(["--silent", "--show-error", "--max-time", "30"])
            .arg("--request")
            .arg(&self.method)
            .arg("--output")
            .arg(&body_out)
            .args(["--write-out", "%{http_code}"]);
        if let Some((user, secret)) = &self.credentials {
            curl.arg("--user").arg(format!("{user}:{secret}"));
        }
        for header in &self.headers {
            curl.arg("--header").arg(header);
        }
        if let Some(body) = &self.body {
            let body_in = scratch.path().join("upload");
            fs::write(&body_in, body).expect("write the request body");
            curl.arg("--data-binary")
                .arg(format!("@{}", body_in.display()));
        }
        if let Some(source) = &self.source {
            curl.arg("--interface").arg(source);
        }
        curl.arg(&self.url);
        let output = curl.output().expect("run curl");
        HttpReply {
            status: String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
            body: fs::read_to_string(&body_out).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
