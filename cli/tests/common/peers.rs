//! Real peers from Debian's packages, fetched the way the repository gets its other Debian
//! binaries: `apt-get download` into a cache under the cargo target directory, `dpkg-deb -x`,
//! and the extracted binary run from there. Libraries the host lacks are fetched the same way
//! (and found through `LD_LIBRARY_PATH`); one that cannot be is a test failure that names the
//! package to install, never a skipped test.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where fetched packages are unpacked: one directory per package.
fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peers")
}

/// A program unpacked from a Debian package, with the library directories it needs.
pub struct Program {
    /// The binary.
    pub path: PathBuf,
    /// `LD_LIBRARY_PATH` for it: the unpacked libraries the host lacks.
    pub library_path: String,
}

/// Unpacks `package` into the cache (once) and returns its root.
fn unpacked(package: &str) -> Result<PathBuf, String> {
    let root = cache().join(package);
    if root.join(".complete").exists() {
        return Ok(root);
    }
    let work = cache().join(format!(".{package}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let out = Command::new("apt-get")
        .args(["download", package])
        .current_dir(&work)
        .output()
        .map_err(|e| format!("cannot run apt-get (a Debian host is needed): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`apt-get download {package}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deb = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("`apt-get download {package}` left no .deb"))?;
    let tree = work.join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    if !status.success() {
        return Err(format!("`dpkg-deb -x {}` failed", deb.display()));
    }
    std::fs::write(tree.join(".complete"), "").map_err(|e| e.to_string())?;
    // Another test binary may have unpacked it meanwhile: either copy is whole.
    if std::fs::rename(&tree, &root).is_err() && !root.join(".complete").exists() {
        return Err(format!("cannot move {} into place", tree.display()));
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(root)
}

/// The Debian package that ships a library by its soname, by Debian's naming rule:
/// `libnetfilter_conntrack.so.3` is in `libnetfilter-conntrack3`, `libfoo1.so.2` in
/// `libfoo1-2`.
fn package_of(soname: &str) -> Option<String> {
    let (name, version) = soname.split_once(".so.")?;
    let name = name.replace('_', "-").to_ascii_lowercase();
    let sep = if name.ends_with(|c: char| c.is_ascii_digit()) {
        "-"
    } else {
        ""
    };
    Some(format!("{name}{sep}{version}"))
}

/// The libraries `ldd` cannot find for `binary` with `library_path`.
fn missing_libraries(binary: &Path, library_path: &str) -> Result<Vec<String>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .env("LD_LIBRARY_PATH", library_path)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// `binary` (a path inside `package`), fetched and unpacked, with the libraries the host lacks
/// fetched too. Panics, naming the package to install, when a library cannot be had.
pub fn debian_program(package: &str, binary: &str) -> Program {
    static LOCK: Mutex<()> = Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = unpacked(package).unwrap_or_else(|e| panic!("cannot get {package}: {e}"));
    let path = root.join(binary);
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut fetched: Vec<String> = Vec::new();
    loop {
        let library_path = std::env::join_paths(&dirs)
            .expect("cache paths have no `:`")
            .to_string_lossy()
            .into_owned();
        let missing = missing_libraries(&path, &library_path).unwrap_or_else(|e| panic!("{e}"));
        let Some(lib) = missing.first() else {
            return Program { path, library_path };
        };
        let install = |why: String| -> ! {
            panic!(
                "{} needs {lib}, which this host lacks ({why}): install the Debian package that \
                 provides it (`apt-get install {}`, or `apt-file search {lib}`), then rerun",
                path.display(),
                package_of(lib).unwrap_or_else(|| "?".into())
            )
        };
        let Some(dep) = package_of(lib) else {
            install("not a versioned soname".into())
        };
        if fetched.contains(&dep) {
            install(format!("package {dep} was fetched but does not provide it"));
        }
        let dep_root = unpacked(&dep).unwrap_or_else(|e| install(e));
        fetched.push(dep);
        for sub in [
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "lib",
            "usr/lib",
        ] {
            let d = dep_root.join(sub);
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
}

/// A port free on 127.0.0.1 for both TCP and UDP now (high: from the kernel's ephemeral range).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// dnsmasq answering on 127.0.0.1 (UDP and TCP) from its command line alone, killed when
/// dropped.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers.
    pub addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (extra options such as `--host-record=...`), and waits
    /// until it answers.
    pub fn start(records: &[&str]) -> Dnsmasq {
        let program = debian_program("dnsmasq-base", "usr/sbin/dnsmasq");
        let user = current_user();
        for _ in 0..5 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("lvs-hc-dnsmasq-{port}.log"));
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(&program.path)
                .env("LD_LIBRARY_PATH", &program.library_path)
                .args([
                    "--keep-in-foreground",
                    "--no-daemon",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    "--pid-file=",
                    "--log-facility=-",
                ])
                .arg(format!("--port={port}"))
                // It drops privileges to this user; as root by default to `nobody`, which
                // works too, but the current user is the one that surely exists.
                .arg(format!("--user={user}"))
                .args(records)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.path.display()));
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if let Some(status) = child.try_wait().unwrap() {
                    let err = std::fs::read_to_string(&log).unwrap_or_default();
                    if err.contains("Address already in use") {
                        break;
                    }
                    panic!("dnsmasq exited ({status}): {err}");
                }
                if std::net::TcpStream::connect(addr).is_ok() {
                    let _ = std::fs::remove_file(&log);
                    return Dnsmasq { child, addr };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&log);
        }
        panic!("dnsmasq did not start listening on 127.0.0.1 in 5 tries");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The name of the user running the tests.
fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
