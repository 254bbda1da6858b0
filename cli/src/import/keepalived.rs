//! keepalived.conf: its tokenizer (with `include`), the block tree, and the conversion of the
//! `virtual_server` sections to lvs-hc services.
//!
//! keepalived's defaults and meanings below were read from keepalived's sources
//! (acassen/keepalived); each is cited by file where it is used.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::emit::{self, Service, Table, Value};
use super::{glob, seconds, Fs, ImportError, Imported, Note};

/// Nested includes deeper than this are refused (keepalived's own limit is lower in practice;
/// this bounds a runaway include chain that is not a cycle).
const MAX_INCLUDE_DEPTH: usize = 32;
/// A `virtual_server_group` range wider than this is not expanded (a typo in a range would
/// otherwise write thousands of services).
const MAX_RANGE: u32 = 256;

/// One word of the input, or a brace, or the end of a line, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// The file it is in.
    pub file: Rc<PathBuf>,
    /// Its line, from 1.
    pub line: usize,
}

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A word, with the quotes of a quoted string removed.
    Word(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// The end of a line.
    Eol,
}

/// A statement: a keyword, its arguments and, when a `{` followed it, the block's statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword.
    pub word: String,
    /// The words after it on its line.
    pub args: Vec<String>,
    /// The block's statements, if it opened one.
    pub children: Option<Vec<Node>>,
    /// The file it is in.
    pub file: Rc<PathBuf>,
    /// Its line.
    pub line: usize,
}

impl Node {
    fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    fn children(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// Reads `path` and every file it includes into tokens, as keepalived's lib/parser.c does: an
/// `include` line is replaced by the files its pattern matches (glob(3), sorted), a relative
/// pattern taken from the directory of the file that holds the `include` (keepalived changes
/// into that directory while reading it); `#` and `!` start comments outside quotes; `{` and
/// `}` are words of their own even without spaces around them.
pub fn tokenize(
    fs: &dyn Fs,
    path: &Path,
    notes: &mut Vec<Note>,
) -> Result<Vec<Token>, ImportError> {
    let text = fs.read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    let mut read = 1;
    tokenize_text(fs, path, &text, &mut stack, &mut read, &mut out, notes);
    Ok(out)
}

/// Most files one import reads, includes and all: siblings that include one another, or a file
/// included twice at every level, would otherwise multiply without end below the depth limit.
const MAX_FILES_READ: usize = 1000;

/// Most blocks open inside one another (keepalived's deepest is four: a url in a checker in a
/// real_server in a virtual_server); deeper input is refused before it builds a tree deep
/// enough to exhaust the stack.
const MAX_NESTING: usize = 16;

fn tokenize_text(
    fs: &dyn Fs,
    path: &Path,
    text: &str,
    stack: &mut Vec<PathBuf>,
    read: &mut usize,
    out: &mut Vec<Token>,
    notes: &mut Vec<Note>,
) {
    let file = Rc::new(path.to_path_buf());
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = split_line(raw);
        if matches!(words.first(), Some(TokenKind::Word(w)) if w == "include") {
            let pattern: Vec<&str> = words[1..]
                .iter()
                .filter_map(|t| match t {
                    TokenKind::Word(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect();
            let note = |text: String| Note {
                file: path.to_path_buf(),
                line,
                text,
            };
            if pattern.len() != 1 {
                notes.push(note(
                    "`include` needs one file name or pattern; line ignored".into(),
                ));
                continue;
            }
            let base = path.parent().unwrap_or(Path::new("/"));
            let matched = glob(fs, base, pattern[0]);
            for inc in matched {
                if stack.contains(&inc) {
                    notes.push(note(format!(
                        "include {}: include cycle ({} is already being read); not read again",
                        pattern[0],
                        inc.display()
                    )));
                    continue;
                }
                if stack.len() >= MAX_INCLUDE_DEPTH {
                    notes.push(note(format!(
                        "include {}: more than {MAX_INCLUDE_DEPTH} nested includes; not read",
                        inc.display()
                    )));
                    continue;
                }
                if *read >= MAX_FILES_READ {
                    notes.push(note(format!(
                        "include {}: more than {MAX_FILES_READ} files read in all; not read",
                        inc.display()
                    )));
                    continue;
                }
                match fs.read(&inc) {
                    Ok(text) => {
                        *read += 1;
                        stack.push(inc.clone());
                        tokenize_text(fs, &inc, &text, stack, read, out, notes);
                        stack.pop();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        notes.push(note(format!("include {}: no such file", inc.display())))
                    }
                    Err(e) => {
                        notes.push(note(format!("include {}: cannot read: {e}", inc.display())))
                    }
                }
            }
            continue;
        }
        for kind in words {
            out.push(Token {
                kind,
                file: file.clone(),
                line,
            });
        }
        out.push(Token {
            kind: TokenKind::Eol,
            file: file.clone(),
            line,
        });
    }
}

/// The tokens of one line (without the end of line).
pub fn split_line(line: &str) -> Vec<TokenKind> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars();
    let flush = |word: &mut String, out: &mut Vec<TokenKind>| {
        if !word.is_empty() {
            out.push(TokenKind::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '"' => {
                // A quoted string is one word, spaces and comment characters included.
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    word.push(q);
                }
                out.push(TokenKind::Word(std::mem::take(&mut word)));
            }
            '{' | '}' => {
                flush(&mut word, &mut out);
                out.push(if c == '{' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The statements of a token stream; a `{` alone on a line opens a block for the statement
/// before it (keepalived accepts the brace on the next line).
pub fn parse(tokens: &[Token]) -> Result<Vec<Node>, ImportError> {
    let syntax = |t: &Token, message: String| ImportError::Syntax {
        file: t.file.to_path_buf(),
        line: t.line,
        message,
    };
    // Each open block: the statement that opened it and the statements read so far.
    let mut frames: Vec<(Option<Node>, Vec<Node>)> = vec![(None, Vec::new())];
    let mut current: Option<Node> = None;
    for t in tokens {
        match &t.kind {
            TokenKind::Word(w) => match &mut current {
                Some(n) => n.args.push(w.clone()),
                None => {
                    current = Some(Node {
                        word: w.clone(),
                        args: Vec::new(),
                        children: None,
                        file: t.file.clone(),
                        line: t.line,
                    })
                }
            },
            TokenKind::Open => {
                let opener = match current.take() {
                    Some(n) => n,
                    None => {
                        let list = &mut frames.last_mut().expect("the top frame stays").1;
                        match list.last() {
                            Some(prev) if prev.children.is_none() => list.pop().expect("checked"),
                            _ => return Err(syntax(t, "`{` without a keyword before it".into())),
                        }
                    }
                };
                if frames.len() > MAX_NESTING {
                    return Err(syntax(
                        t,
                        format!("blocks nested more than {MAX_NESTING} deep"),
                    ));
                }
                frames.push((Some(opener), Vec::new()));
            }
            TokenKind::Close => {
                if let Some(n) = current.take() {
                    frames.last_mut().expect("the top frame stays").1.push(n);
                }
                if frames.len() == 1 {
                    return Err(syntax(t, "`}` without a matching `{`".into()));
                }
                let (opener, list) = frames.pop().expect("checked");
                let mut node = opener.expect("only the top frame has no opener");
                node.children = Some(list);
                frames.last_mut().expect("the top frame stays").1.push(node);
            }
            TokenKind::Eol => {
                if let Some(n) = current.take() {
                    frames.last_mut().expect("the top frame stays").1.push(n);
                }
            }
        }
    }
    if let Some(n) = current.take() {
        frames.last_mut().expect("the top frame stays").1.push(n);
    }
    if frames.len() > 1 {
        let (opener, _) = frames.pop().expect("checked");
        let n = opener.expect("only the top frame has no opener");
        return Err(ImportError::Syntax {
            file: n.file.to_path_buf(),
            line: n.line,
            message: format!("the `{{` of `{}` is never closed", n.word),
        });
    }
    Ok(frames.pop().expect("the top frame stays").1)
}

/// Imports a keepalived.conf and the files it includes.
pub fn import(fs: &dyn Fs, path: &Path) -> Result<Imported, ImportError> {
    let mut notes = Vec::new();
    let tokens = tokenize(fs, path, &mut notes)?;
    let nodes = parse(&tokens)?;
    let mut cx = Convert {
        notes,
        groups: BTreeMap::new(),
        services: Vec::new(),
    };
    let mut sync = None;
    for n in &nodes {
        if n.word == "virtual_server_group" {
            cx.group(n);
        }
    }
    for n in &nodes {
        match n.word.as_str() {
            "virtual_server_group" => {}
            "virtual_server" => cx.virtual_server(n),
            w if VRRP_SECTIONS.contains(&w) => cx.note(
                n,
                format!("`{w}` kept in keepalived: lvs-hc only checks servers; VRRP stays with keepalived"),
            ),
            "global_defs" => {
                cx.note(
                    n,
                    "`global_defs` kept in keepalived (router id, notification e-mail, VRRP and \
                     script settings); lvs-hc's daemon settings are in its [daemon] table"
                        .into(),
                );
                for d in n.children.iter().flatten() {
                    if d.word == "lvs_sync_daemon" {
                        sync = cx.sync_daemon(d, &nodes).or(sync);
                    }
                }
            }
            w => cx.note(n, format!("unknown keyword `{w}`; not carried over")),
        }
    }
    // Reports in input order within each file (checks are converted after their service).
    cx.notes
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if cx.services.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
            notes: cx.notes,
        });
    }
    let header = vec![
        format!(
            "Imported by `lvs-hc import keepalived` from {}.",
            path.display()
        ),
        "Comments mark each place where lvs-hc behaves differently from keepalived.".into(),
    ];
    Ok(Imported {
        toml: emit::document(&header, sync.as_ref(), &cx.services),
        notes: cx.notes,
    })
}

/// Top-level sections that belong to keepalived's VRRP side (or its other non-checker parts).
const VRRP_SECTIONS: &[&str] = &[
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "track_process",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "bfd_instance",
    "garp_group",
    "net_namespace",
];

/// One member of a `virtual_server_group`.
#[derive(Clone, Debug)]
enum Member {
    Addr(IpAddr, u16),
    Fwmark(u32),
}

struct Convert {
    notes: Vec<Note>,
    groups: BTreeMap<String, Vec<Member>>,
    services: Vec<Service>,
}

/// Timing settings that a real server and its checkers inherit from the virtual server.
#[derive(Clone, Debug, Default)]
struct Timing {
    delay_loop: Option<f64>,
    connect_timeout: Option<f64>,
    retry: Option<u32>,
    delay_before_retry: Option<f64>,
}

impl Timing {
    /// `self`'s settings, with `parent`'s where `self` has none.
    fn over(&self, parent: &Timing) -> Timing {
        Timing {
            delay_loop: self.delay_loop.or(parent.delay_loop),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
        }
    }
}

/// A real_server as read.
struct Real<'a> {
    node: &'a Node,
    ip: IpAddr,
    port: u16,
    weight: i64,
    table: Table,
    checkers: Vec<&'a Node>,
    timing: Timing,
    inhibit: bool,
}

impl Convert {
    /// `lvs_sync_daemon IFACE INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]`
    /// (global_defs) as lvs-hc's `[sync]`. keepalived's sync id defaults to the instance's
    /// `virtual_router_id`; it runs the master daemon while the instance is MASTER and the
    /// backup while BACKUP, where lvs-hc runs both on each director.
    fn sync_daemon(&mut self, d: &Node, nodes: &[Node]) -> Option<emit::Table> {
        let (Some(interface), Some(instance)) = (d.arg(0), d.arg(1)) else {
            self.note(
                d,
                "`lvs_sync_daemon` needs an interface and a vrrp_instance; not carried over".into(),
            );
            return None;
        };
        let mut t = emit::Table {
            comments: vec![format!(
                "From keepalived's `lvs_sync_daemon {interface} {instance}`: keepalived \
                     runs the master sync daemon while {instance} is MASTER and the backup while \
                     BACKUP; lvs-hc runs both on each director (role = \"both\"), so that \
                     nothing changes at failover. Remove lvs_sync_daemon from keepalived.conf."
            )],
            entries: Vec::new(),
        };
        t.set("interface", emit::Value::str(interface));
        let vrid = nodes
            .iter()
            .filter(|n| n.word == "vrrp_instance" && n.arg(0) == Some(instance))
            .flat_map(|n| n.children.iter().flatten())
            .find(|c| c.word == "virtual_router_id")
            .and_then(|c| c.arg(0))
            .and_then(|v| v.parse::<i64>().ok());
        let mut id = None;
        let mut rest = d.args[2..].iter();
        while let Some(word) = rest.next() {
            let value = rest.next();
            let key = match word.as_str() {
                "id" => "sync_id",
                "maxlen" => "max_packet_len",
                "port" => "port",
                "ttl" => "ttl",
                "group" => "group",
                other => {
                    self.note(
                        d,
                        format!("`lvs_sync_daemon` option `{other}` is unknown; not carried over"),
                    );
                    continue;
                }
            };
            let Some(value) = value else {
                self.note(
                    d,
                    format!("`lvs_sync_daemon {word}` has no value; not carried over"),
                );
                break;
            };
            match (key, value.parse::<i64>()) {
                ("group", _) => t.set(key, emit::Value::str(value.as_str())),
                ("sync_id", Ok(n)) => id = Some(n),
                (_, Ok(n)) => t.set(key, emit::Value::Int(n)),
                (_, Err(_)) => self.note(
                    d,
                    format!("`lvs_sync_daemon {word} {value}` is not a number; not carried over"),
                ),
            }
        }
        match (id, vrid) {
            (Some(n), _) => t.set("sync_id", emit::Value::Int(n)),
            (None, Some(n)) => t.set_noted(
                format!("keepalived's default: {instance}'s virtual_router_id"),
                "sync_id",
                emit::Value::Int(n),
            ),
            (None, None) => self.note(
                d,
                format!(
                    "`lvs_sync_daemon` without `id`, and no virtual_router_id for {instance}: \
                     sync_id left at lvs-hc's default, 0; set it to the pair's id"
                ),
            ),
        }
        self.note(
            d,
            "`lvs_sync_daemon` carried over as [sync]: lvs-hc runs the sync daemons (both roles \
             on each director); remove it from keepalived.conf"
                .into(),
        );
        Some(t)
    }

    fn note(&mut self, n: &Node, text: String) {
        self.notes.push(Note {
            file: n.file.to_path_buf(),
            line: n.line,
            text,
        });
    }

    fn group(&mut self, n: &Node) {
        let Some(name) = n.arg(0) else {
            self.note(
                n,
                "virtual_server_group without a name; not carried over".into(),
            );
            return;
        };
        let mut members = Vec::new();
        for m in n.children() {
            if m.word == "fwmark" {
                match m.arg(0).and_then(|s| s.parse().ok()) {
                    Some(mark) => members.push(Member::Fwmark(mark)),
                    None => self.note(m, "fwmark needs a number; member not carried over".into()),
                }
                continue;
            }
            let port = m.arg(0).and_then(|p| p.parse::<u16>().ok());
            match (expand_range(&m.word), port) {
                (Ok(addrs), Some(port)) => {
                    members.extend(addrs.into_iter().map(|a| Member::Addr(a, port)))
                }
                (Err(why), _) => self.note(m, format!("group member `{}`: {why}", m.word)),
                (_, None) => self.note(
                    m,
                    format!("group member `{}` needs a port; not carried over", m.word),
                ),
            }
        }
        self.groups.insert(name.to_string(), members);
    }

    fn virtual_server(&mut self, vs: &Node) {
        let members = match (vs.arg(0), vs.arg(1)) {
            (Some("group"), Some(name)) => match self.groups.get(name) {
                Some(m) => m.clone(),
                None => {
                    self.note(
                        vs,
                        format!("virtual_server group {name}: no such group; not carried over"),
                    );
                    return;
                }
            },
            (Some("fwmark"), Some(mark)) => match mark.parse() {
                Ok(m) => vec![Member::Fwmark(m)],
                Err(_) => {
                    self.note(vs, format!("virtual_server fwmark {mark}: not a number"));
                    return;
                }
            },
            (Some(ip), Some(port)) => {
                match (ip.parse::<IpAddr>(), port.parse::<u16>()) {
                    (Ok(ip), Ok(port)) => vec![Member::Addr(ip, port)],
                    _ => {
                        self.note(vs, format!("virtual_server {ip} {port}: not an address and port; not carried over"));
                        return;
                    }
                }
            }
            _ => {
                self.note(
                    vs,
                    "virtual_server needs `IP PORT`, `fwmark N` or `group NAME`; not carried over"
                        .into(),
                );
                return;
            }
        };
        let has_addr = members.iter().any(|m| matches!(m, Member::Addr(..)));
        let Some(template) = self.service_template(vs, has_addr) else {
            return;
        };
        for m in &members {
            let mut svc = template.clone();
            let mut lead = vec![format!(
                "{}:{}: virtual_server {}",
                vs.file.display(),
                vs.line,
                vs.args.join(" ")
            )];
            if vs.arg(0) == Some("group") {
                lead.push(format!(
                    "member {} of group {}",
                    member_text(m),
                    vs.arg(1).unwrap_or("")
                ));
            }
            svc.table.comments = lead;
            let mut keyed = Table::default();
            match m {
                Member::Addr(ip, port) => keyed.set("address", Value::str(sockaddr(*ip, *port))),
                Member::Fwmark(mark) => keyed.set("fwmark", Value::Int(i64::from(*mark))),
            }
            keyed.entries.append(&mut svc.table.entries);
            svc.table.entries = keyed.entries;
            if let Member::Fwmark(_) = m {
                // A fwmark service has no protocol or port; its servers are addresses only and
                // every check that connects names the real server's port.
                svc.table.entries.retain(|e| e.key != "protocol");
                for s in &mut svc.servers {
                    fwmark_server(s);
                }
                for f in &mut svc.fallbacks {
                    if let Some(Value::Str(a)) = f.value("address").cloned() {
                        if let Some(e) = f.entries.iter_mut().find(|e| e.key == "address") {
                            e.value = Value::str(strip_port(&a));
                        }
                    }
                }
            }
            svc.hoist_common_checks();
            self.services.push(svc);
        }
    }

    /// The service as read from a virtual_server block, without its address.
    fn service_template(&mut self, vs: &Node, has_addr: bool) -> Option<Service> {
        let mut svc = Service::default();
        let mut timing = Timing::default();
        let mut scheduler: Option<String> = None;
        let mut kind: Option<String> = None;
        let mut protocol: Option<String> = None;
        let mut persistence: Option<u32> = None;
        let mut granularity: Option<String> = None;
        let mut quorum: Option<(i64, &Node)> = None;
        let mut hysteresis: Option<&Node> = None;
        let mut sorry: Option<&Node> = None;
        let mut sorry_method: Option<String> = None;
        let mut inhibit = false;
        let mut alpha = false;
        let mut virtualhost: Option<String> = None;
        let mut flags: Vec<String> = Vec::new();
        let mut one_packet = false;
        let mut family: Option<String> = None;
        let mut reals = Vec::new();
        for c in vs.children() {
            let a0 = c.arg(0).map(str::to_string);
            match c.word.as_str() {
                "delay_loop" => timing.delay_loop = self.secs(c),
                "connect_timeout" => timing.connect_timeout = self.secs(c),
                "retry" => timing.retry = self.count(c),
                "delay_before_retry" => timing.delay_before_retry = self.secs(c),
                "lb_algo" | "lvs_sched" => scheduler = a0,
                "lb_kind" | "lvs_method" => kind = a0,
                "protocol" => protocol = a0,
                "persistence_timeout" => persistence = a0.and_then(|s| s.parse().ok()),
                "persistence_granularity" => granularity = a0,
                "quorum" => quorum = a0.and_then(|s| s.parse().ok()).map(|q| (q, c)),
                "hysteresis" => hysteresis = Some(c),
                "sorry_server" => sorry = Some(c),
                "sorry_server_lvs_method" => sorry_method = a0,
                "sorry_server_inhibit" => self.note(
                    c,
                    "sorry_server_inhibit not carried over: lvs-hc adds the fallback server only \
                     while it is needed and has no way to keep it in at weight 0 otherwise"
                        .into(),
                ),
                "inhibit_on_failure" => inhibit = true,
                "alpha" => alpha = true,
                "omega" => self.note(c, "omega not carried over: it only runs keepalived's notify scripts when a service is removed; lvs-hc has no notify scripts".into()),
                "virtualhost" => virtualhost = a0,
                "ops" => one_packet = true,
                "hashed" => self.note(c, "hashed not carried over: lvs-hc has no such scheduler flag key; use sched_flags = [\"flag-1\"]".into()),
                "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    flags.push(c.word.clone())
                }
                "ip_family" => family = a0,
                "warmup" => self.note(c, "warmup not carried over: lvs-hc starts every server's first probe at once (with jitter = interval / 10)".into()),
                "real_server" => {
                    if let Some(r) = self.real_server(c) {
                        reals.push(r);
                    }
                }
                "persistence_engine" | "ha_suspend" | "smtp_alert" | "snmp_name" | "quorum_up"
                | "quorum_down" | "notify_up" | "notify_down" => self.note(
                    c,
                    format!("`{}` not carried over: lvs-hc has no equivalent", c.word),
                ),
                w => self.note(c, format!("unknown keyword `{w}` in virtual_server; not carried over")),
            }
        }
        if reals.is_empty() {
            self.note(vs, "virtual_server without real_server; not carried over (lvs-hc needs at least one server)".into());
            return None;
        }
        let t = &mut svc.table;
        // check_data.c: a virtual server without lb_algo gets IPVS_DEF_SCHED, "wlc" (ipvswrapper.h).
        t.set(
            "scheduler",
            Value::str(scheduler.unwrap_or_else(|| "wlc".into()).to_lowercase()),
        );
        match protocol.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("TCP") => t.set("protocol", Value::str("tcp")),
            Some("UDP") => t.set("protocol", Value::str("udp")),
            Some("SCTP") => t.set("protocol", Value::str("sctp")),
            Some(other) => {
                self.note(vs, format!("protocol {other} not known; taken as tcp"));
                t.set("protocol", Value::str("tcp"));
            }
            None if !has_addr => {}
            None => {
                // check_data.c: "no protocol set - defaulting to UDP" (the kernel's reading of 0).
                self.note(vs, "virtual_server has no `protocol`: keepalived defaults to UDP (and warns); written as protocol = \"udp\"".into());
                t.set_noted(
                    "keepalived had no protocol here and defaults to UDP",
                    "protocol",
                    Value::str("udp"),
                );
            }
        }
        if let Some(f) = family {
            t.set(
                "family",
                Value::str(if f == "inet6" { "ipv6" } else { "ipv4" }),
            );
        }
        if let Some(timeout) = persistence {
            let mut kv = vec![("timeout".to_string(), Value::str(format!("{timeout}s")))];
            // check_data.c: persistence_granularity defaults to 0xffffffff, one client address,
            // which is lvs-hc's default too.
            if let Some(g) = granularity {
                match g.parse::<i64>() {
                    Ok(prefix) => kv.push(("netmask".into(), Value::Int(prefix))),
                    Err(_) => kv.push(("netmask".into(), Value::str(g))),
                }
            }
            if kv.len() == 1 {
                t.set("persistence", kv.pop().expect("one").1);
            } else {
                t.set("persistence", Value::Inline(kv));
            }
        }
        if !flags.is_empty() {
            t.set("sched_flags", Value::Strs(flags));
        }
        if one_packet {
            t.set("one_packet", Value::Bool(true));
        }
        // check_data.c: forwarding_method unset on the virtual server and the real server
        // becomes IP_VS_CONN_F_MASQ, i.e. NAT; lvs-hc's default is DR.
        let forward = match kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("DR") => "dr",
            Some("TUN") => "tun",
            Some("NAT") => "nat",
            Some(other) => {
                self.note(
                    vs,
                    format!("lb_kind {other} not known; taken as NAT, keepalived's default"),
                );
                "nat"
            }
            None => "",
        };
        if forward.is_empty() {
            t.set_noted(
                "keepalived's default lb_kind is NAT (lvs-hc's default is dr)",
                "forward",
                Value::str("nat"),
            );
        } else {
            t.set("forward", Value::str(forward));
        }
        let forward = if forward.is_empty() { "nat" } else { forward };

        // Quorum: keepalived's is a total weight of the healthy servers, lvs-hc's a count.
        let weights: Vec<i64> = reals.iter().map(|r| r.weight).collect();
        if let Some((q, qn)) = quorum {
            let (count, comment) = quorum_count(q, &weights);
            if count != 1 || comment.is_some() {
                match comment {
                    Some(c) => {
                        self.note(qn, format!("quorum {q}: {c}"));
                        t.set_noted(format!("keepalived quorum {q} (a total weight): {c}"), "quorum", Value::Int(count));
                    }
                    None => t.set_noted(
                        format!("keepalived quorum {q} is a total weight; every server weighs {}, so {count} servers", weights[0]),
                        "quorum",
                        Value::Int(count),
                    ),
                }
            }
        }
        if let Some(h) = hysteresis {
            if h.arg(0) != Some("0") {
                self.note(h, "hysteresis not carried over: lvs-hc's quorum has none (rise and fall already damp each server)".into());
            }
        }
        if sorry.is_some() {
            t.set_noted(
                "keepalived uses sorry_server only when quorum is lost, alone",
                "fallback_mode",
                Value::str("exclusive"),
            );
        }
        let any_inhibit = inhibit || reals.iter().any(|r| r.inhibit);
        if any_inhibit {
            if !inhibit && !reals.iter().all(|r| r.inhibit) {
                self.note(vs, "inhibit_on_failure on some real servers only: lvs-hc's on_failure is per service; applied to all".into());
            }
            t.set_noted(
                "inhibit_on_failure: a failed server stays at weight 0",
                "on_failure",
                Value::str("zero"),
            );
        }
        // check_data.c: alpha defaults to off, and a checker starts "up": servers go in at once
        // and one failure takes them out (check_data.c sets retry_it = retry at start).
        if alpha {
            t.set_noted(
                "alpha: servers start failed and wait for a passing check",
                "new_servers",
                Value::str("wait"),
            );
        } else {
            t.set_noted(
                "keepalived without alpha puts servers in at once (and its first failure takes one out)",
                "new_servers",
                Value::str("in"),
            );
        }
        for r in reals {
            let mut server = emit::Server {
                table: r.table,
                checks: Vec::new(),
            };
            if r.checkers.is_empty() {
                server
                    .table
                    .comments
                    .push("no checker in keepalived: always in".into());
            }
            let timing = r.timing.over(&timing);
            for ch in r.checkers {
                let mut checks = self.checker(ch, &timing, virtualhost.as_deref(), r.port);
                server.checks.append(&mut checks);
            }
            let _ = (r.node, r.ip);
            svc.servers.push(server);
        }
        if let Some(s) = sorry {
            match (
                s.arg(0).and_then(|a| a.parse::<IpAddr>().ok()),
                s.arg(1).and_then(|p| p.parse::<u16>().ok()),
            ) {
                (Some(ip), Some(port)) => {
                    let mut f = Table::default();
                    f.set("address", Value::str(sockaddr(ip, port)));
                    let m = sorry_method.map(|m| m.to_ascii_lowercase());
                    let m = m.as_deref().unwrap_or(forward);
                    f.set("forward", Value::str(m));
                    svc.fallbacks.push(f);
                }
                _ => self.note(s, "sorry_server needs `IP PORT`; not carried over".into()),
            }
        }
        Some(svc)
    }

    fn real_server<'a>(&mut self, n: &'a Node) -> Option<Real<'a>> {
        let (Some(ip), Some(port)) = (
            n.arg(0).and_then(|a| a.parse::<IpAddr>().ok()),
            n.arg(1).and_then(|p| p.parse::<u16>().ok()),
        ) else {
            self.note(n, "real_server needs `IP PORT`; not carried over".into());
            return None;
        };
        let mut table = Table::default();
        table.set("address", Value::str(sockaddr(ip, port)));
        let mut weight = 1; // check_data.c: a real server's weight defaults to 1.
        let mut timing = Timing::default();
        let mut checkers = Vec::new();
        let mut inhibit = false;
        let mut thresholds = Vec::new();
        for c in n.children() {
            match c.word.as_str() {
                "weight" => match c.arg(0).and_then(|w| w.parse::<i64>().ok()) {
                    Some(w) if (0..=65535).contains(&w) => weight = w,
                    _ => self.note(c, "weight must be 0 to 65535; default 1 kept".into()),
                },
                "uthreshold" | "lthreshold" => match c.arg(0).and_then(|w| w.parse::<i64>().ok()) {
                    Some(v) => thresholds.push((
                        if c.word == "uthreshold" { "upper_threshold" } else { "lower_threshold" },
                        v,
                    )),
                    None => self.note(c, format!("{} needs a number; not carried over", c.word)),
                },
                "lvs_method" => match c.arg(0).map(str::to_ascii_lowercase).as_deref() {
                    Some(m @ ("dr" | "nat" | "tun")) => table.set("forward", Value::str(m)),
                    _ => self.note(c, "lvs_method must be DR, NAT or TUN; not carried over".into()),
                },
                "inhibit_on_failure" => inhibit = true,
                "delay_loop" => timing.delay_loop = self.secs(c),
                "connect_timeout" => timing.connect_timeout = self.secs(c),
                "retry" => timing.retry = self.count(c),
                "delay_before_retry" => timing.delay_before_retry = self.secs(c),
                "alpha" => self.note(c, "alpha on a real server not carried over: lvs-hc's new_servers is per service (the virtual_server's alpha decides)".into()),
                "warmup" => self.note(c, "warmup not carried over: lvs-hc starts every server's first probe at once (with jitter = interval / 10)".into()),
                "notify_up" | "notify_down" | "smtp_alert" | "virtualhost" | "snmp_name" => self.note(
                    c,
                    format!("`{}` on a real server not carried over: lvs-hc has no equivalent", c.word),
                ),
                w if is_checker(w) => checkers.push(c),
                w => self.note(c, format!("unknown keyword `{w}` in real_server; not carried over")),
            }
        }
        table.set("weight", Value::Int(weight));
        for (k, v) in thresholds {
            table.set(k, Value::Int(v));
        }
        Some(Real {
            node: n,
            ip,
            port,
            weight,
            table,
            checkers,
            timing,
            inhibit,
        })
    }

    /// The lvs-hc checks for one keepalived checker block.
    fn checker(
        &mut self,
        ch: &Node,
        inherited: &Timing,
        vhost: Option<&str>,
        rs_port: u16,
    ) -> Vec<Table> {
        let kind = ch.word.as_str();
        let mut own = Timing::default();
        let mut conn = Table::default();
        let mut specific: Vec<&Node> = Vec::new();
        for c in ch.children() {
            match c.word.as_str() {
                "connect_ip" => match c.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) {
                    Some(ip) => {
                        conn.set_noted("keepalived connect_ip", "ip", Value::str(ip.to_string()))
                    }
                    None => self.note(c, "connect_ip needs an address; not carried over".into()),
                },
                "connect_port" => match c.arg(0).and_then(|a| a.parse::<i64>().ok()) {
                    Some(p) if (1..=65535).contains(&p) => conn.set("port", Value::Int(p)),
                    _ => self.note(c, "connect_port needs a port; not carried over".into()),
                },
                "bindto" => match c.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) {
                    Some(ip) => conn.set("source", Value::str(ip.to_string())),
                    None => self.note(c, "bindto needs an address; not carried over".into()),
                },
                "bind_port" | "bind_if" | "fwmark" | "log_all_failures" | "alpha" | "warmup" => {
                    self.note(
                        c,
                        format!(
                            "`{}` in {kind} not carried over: lvs-hc has no per-check equivalent",
                            c.word
                        ),
                    )
                }
                "connect_timeout" => own.connect_timeout = self.secs(c),
                "retry" | "nb_get_retry" => own.retry = self.count(c),
                "delay_before_retry" => own.delay_before_retry = self.secs(c),
                "delay_loop" => own.delay_loop = self.secs(c),
                _ => specific.push(c),
            }
        }
        let timing = own.over(inherited);
        // Per-checker defaults: check_api.c gives every checker retry 1 and delay_before_retry
        // 1s; check_http.c sets delay_before_retry 3s for HTTP_GET/SSL_GET; check_misc.c sets
        // retry 0; check_dns.c sets retry 3 (DNS_DEFAULT_RETRY in check_dns.h) and
        // delay_before_retry 0, meaning delay_loop.
        let (default_retry, default_dbr) = match kind {
            "HTTP_GET" | "SSL_GET" => (1, Some(3.0)),
            "MISC_CHECK" => (0, Some(1.0)),
            "DNS_CHECK" => (3, None),
            _ => (1, Some(1.0)),
        };
        let mut checks: Vec<Table> = Vec::new();
        let mut misc_timeout = None;
        match kind {
            "HTTP_GET" | "SSL_GET" => {
                let mut checker_vhost = vhost.map(str::to_string);
                let mut sni: Option<String> = None;
                let mut urls = Vec::new();
                for c in &specific {
                    match c.word.as_str() {
                        "url" => urls.push(*c),
                        "virtualhost" => checker_vhost = c.arg(0).map(str::to_string),
                        "sni_name" => sni = c.arg(0).map(str::to_string),
                        "enable_sni" => {}
                        w => self.note(
                            c,
                            format!("`{w}` in {kind} not carried over: lvs-hc has no equivalent"),
                        ),
                    }
                }
                if urls.is_empty() {
                    self.note(
                        ch,
                        format!("{kind} without a url block: checking path \"/\""),
                    );
                }
                let total = urls.len().max(1);
                for i in 0..total {
                    let mut t = Table::default();
                    t.set(
                        "type",
                        Value::str(if kind == "SSL_GET" { "https" } else { "http" }),
                    );
                    if total > 1 {
                        t.comments.push(format!(
                            "url {} of {total}: keepalived passes a server only when every url passes; so do lvs-hc's checks",
                            i + 1
                        ));
                    }
                    let mut host = checker_vhost.clone();
                    let mut path = "/".to_string();
                    if let Some(u) = urls.get(i) {
                        for c in u.children() {
                            match c.word.as_str() {
                                "path" => path = c.args.join(" "),
                                "status_code" => {
                                    let mut items = Vec::new();
                                    for a in &c.args {
                                        match a.parse::<i64>() {
                                            Ok(n) => items.push(Value::Int(n)),
                                            Err(_) => items.push(Value::str(a.clone())),
                                        }
                                    }
                                    t.set("expect_status", Value::Array(items));
                                }
                                "digest" => match c.arg(0) {
                                    Some(d) => t.set_noted(
                                        "keepalived digest: MD5 of the whole body",
                                        "expect_body_md5",
                                        Value::str(d.to_ascii_lowercase()),
                                    ),
                                    None => self
                                        .note(c, "digest needs a value; not carried over".into()),
                                },
                                "virtualhost" => host = c.arg(0).map(str::to_string),
                                "regex" => match c.arg(0) {
                                    Some(r) => t.set("expect_body_regex", Value::str(r)),
                                    None => {
                                        self.note(c, "regex needs a value; not carried over".into())
                                    }
                                },
                                w => self.note(
                                    c,
                                    format!(
                                        "`{w}` in url not carried over: lvs-hc has no equivalent"
                                    ),
                                ),
                            }
                        }
                    }
                    let mut comments = vec![];
                    if let Some(sendable) = super::request_path(&path) {
                        comments.push(format!(
                            "keepalived sends the path {path:?} as written; spaces and control \
                             characters percent-encoded"
                        ));
                        path = sendable;
                    }
                    t.entries.insert(
                        1,
                        emit::Entry {
                            comments,
                            key: "path".into(),
                            value: Value::str(path),
                        },
                    );
                    if let Some(h) = &host {
                        t.set("host", Value::str(h.clone()));
                    }
                    if kind == "SSL_GET" {
                        if let Some(s) = &sni {
                            t.set("sni", Value::str(s.clone()));
                        }
                        t.set_noted(
                            "keepalived's SSL_GET does not verify the certificate; lvs-hc would",
                            "verify",
                            Value::Bool(false),
                        );
                    }
                    checks.push(t);
                }
            }
            "TCP_CHECK" => {
                for c in &specific {
                    self.note(
                        c,
                        format!(
                            "`{}` in TCP_CHECK not carried over: lvs-hc has no equivalent",
                            c.word
                        ),
                    );
                }
                let mut t = Table::default();
                t.set("type", Value::str("tcp"));
                checks.push(t);
            }
            "PING_CHECK" => {
                for c in &specific {
                    self.note(
                        c,
                        format!(
                            "`{}` in PING_CHECK not carried over: lvs-hc has no equivalent",
                            c.word
                        ),
                    );
                }
                let mut t = Table::default();
                t.set("type", Value::str("ping"));
                checks.push(t);
            }
            "MISC_CHECK" => {
                let mut path = None;
                let mut dynamic = false;
                for c in &specific {
                    match c.word.as_str() {
                        "misc_path" => path = Some((c.args.join(" "), *c)),
                        "misc_timeout" => misc_timeout = self.secs(c),
                        "misc_dynamic" => dynamic = true,
                        "user" => self.note(c, "user not carried over: lvs-hc runs exec checks as its own user; make the program drop privileges".into()),
                        w => self.note(c, format!("`{w}` in MISC_CHECK not carried over: lvs-hc has no equivalent")),
                    }
                }
                let Some((path, pnode)) = path else {
                    self.note(ch, "MISC_CHECK without misc_path; not carried over".into());
                    return Vec::new();
                };
                let mut t = Table::default();
                t.set("type", Value::str("exec"));
                let (argv, comment) = misc_argv(&path, dynamic);
                if let Some(why) = &comment {
                    self.note(pnode, format!("misc_path: {why}"));
                }
                match comment {
                    Some(c) => t.set_noted(c, "command", Value::Strs(argv)),
                    None => t.set("command", Value::Strs(argv)),
                }
                if dynamic {
                    t.set("dynamic_weight", Value::Bool(true));
                }
                checks.push(t);
            }
            "DNS_CHECK" => {
                // check_dns.h: DNS_DEFAULT_TYPE is SOA and DNS_DEFAULT_NAME is "" (the root).
                let mut qtype = "SOA".to_string();
                let mut name = ".".to_string();
                for c in &specific {
                    match c.word.as_str() {
                        "type" => qtype = c.arg(0).unwrap_or("SOA").to_ascii_uppercase(),
                        "name" => name = c.arg(0).unwrap_or(".").to_string(),
                        w => self.note(
                            c,
                            format!(
                                "`{w}` in DNS_CHECK not carried over: lvs-hc has no equivalent"
                            ),
                        ),
                    }
                }
                let mut t = Table::default();
                t.set("type", Value::str("dns"));
                t.set("query_type", Value::str(qtype));
                if name == "." || name.is_empty() {
                    self.note(
                        ch,
                        "DNS_CHECK without `name` asks for the root zone, which lvs-hc's dns \
                         check refuses: set query_name to a name the server answers"
                            .into(),
                    );
                    t.set_noted(
                        "keepalived asked for the root zone: replace with a name the server answers",
                        "query_name",
                        Value::str("."),
                    );
                } else {
                    t.set("query_name", Value::str(name));
                }
                checks.push(t);
            }
            "SMTP_CHECK" => {
                // check_smtp.h: SMTP_DEFAULT_HELO is "smtpchecker.keepalived.org".
                let mut helo = "smtpchecker.keepalived.org".to_string();
                for c in &specific {
                    match c.word.as_str() {
                        "helo_name" => helo = c.arg(0).unwrap_or(&helo).to_string(),
                        "host" => self.note(c, "SMTP_CHECK host block not carried over: write one smtp check per host with `ip` and `port`".into()),
                        w => self.note(c, format!("`{w}` in SMTP_CHECK not carried over: lvs-hc has no equivalent")),
                    }
                }
                let mut t = Table::default();
                t.set("type", Value::str("smtp"));
                t.set("helo_name", Value::str(helo));
                checks.push(t);
            }
            "UDP_CHECK" => {
                let mut t = Table::default();
                t.set("type", Value::str("udp"));
                let mut payload = None;
                let mut reply: Option<Option<String>> = None;
                for c in &specific {
                    match c.word.as_str() {
                        "payload" => payload = Some(c.args.concat()),
                        "require_reply" => {
                            reply = Some(if c.args.is_empty() {
                                None
                            } else {
                                Some(c.args.concat())
                            })
                        }
                        w => self.note(
                            c,
                            format!(
                                "`{w}` in UDP_CHECK not carried over: lvs-hc has no equivalent"
                            ),
                        ),
                    }
                }
                match payload {
                    Some(p) => t.set("send_hex", Value::str(p.to_ascii_lowercase())),
                    None => {
                        self.note(ch, "UDP_CHECK without payload sends an empty datagram; lvs-hc sends at least one byte: send_hex = \"00\"".into());
                        t.set_noted(
                            "keepalived sent an empty datagram; lvs-hc needs at least one byte",
                            "send_hex",
                            Value::str("00"),
                        );
                    }
                }
                match reply {
                    None => t.set_noted(
                        "keepalived without require_reply: silence passes unless an ICMP error comes back",
                        "silence_passes",
                        Value::Bool(true),
                    ),
                    Some(Some(hex)) => t.set_noted(
                        "keepalived compares the reply's start (with its mask); lvs-hc looks for these bytes anywhere",
                        "expect_hex",
                        Value::str(hex.to_ascii_lowercase()),
                    ),
                    Some(None) => {}
                }
                checks.push(t);
            }
            other => {
                self.note(
                    ch,
                    format!("checker `{other}` not carried over: lvs-hc has no such check"),
                );
                return Vec::new();
            }
        }
        for t in &mut checks {
            t.entries.extend(conn.entries.iter().cloned());
            let timeout = if kind == "MISC_CHECK" {
                // check_misc.c: without misc_timeout the program may run for delay_loop.
                misc_timeout.or(timing.delay_loop).or(Some(60.0))
            } else {
                timing.connect_timeout
            };
            self.write_timing(
                t,
                &timing,
                timeout,
                kind,
                default_retry,
                default_dbr,
                rs_port,
            );
        }
        checks
    }

    #[allow(clippy::too_many_arguments)]
    fn write_timing(
        &mut self,
        t: &mut Table,
        timing: &Timing,
        timeout: Option<f64>,
        kind: &str,
        default_retry: u32,
        default_dbr: Option<f64>,
        _rs_port: u16,
    ) {
        // check_data.h: KEEPALIVED_DEFAULT_DELAY, 60s; check_data.c: connect_timeout 5s.
        let interval = timing.delay_loop.unwrap_or(60.0).max(0.1);
        let timeout = timeout.unwrap_or(5.0).clamp(0.001, 3600.0);
        t.set("interval", Value::str(seconds(interval)));
        if timeout > interval {
            t.set_noted(
                "keepalived allows a timeout longer than delay_loop",
                "allow_long_timeout",
                Value::Bool(true),
            );
        }
        t.set("timeout", Value::str(seconds(timeout)));
        let dbr = timing
            .delay_before_retry
            .or(default_dbr)
            .unwrap_or(interval);
        if dbr >= 0.1 && dbr < interval {
            t.set_noted(
                "keepalived's delay_before_retry: lvs-hc uses it after every failed probe, also while the server is out",
                "failing_interval",
                Value::str(seconds(dbr)),
            );
        }
        let retry = timing.retry.unwrap_or(default_retry).min(999);
        t.set_noted(
            format!("keepalived {kind} retry {retry}: out after retry + 1 failures; no rise in keepalived, one pass brings a server back"),
            "rise",
            Value::Int(1),
        );
        t.set("fall", Value::Int(i64::from(retry) + 1));
    }

    fn secs(&mut self, n: &Node) -> Option<f64> {
        match n.arg(0).and_then(|a| a.parse::<f64>().ok()) {
            Some(s) if s >= 0.0 && s.is_finite() => Some(s),
            _ => {
                self.note(
                    n,
                    format!("{} needs a number of seconds; not carried over", n.word),
                );
                None
            }
        }
    }

    fn count(&mut self, n: &Node) -> Option<u32> {
        match n.arg(0).and_then(|a| a.parse::<u32>().ok()) {
            Some(c) => Some(c),
            None => {
                self.note(n, format!("{} needs a number; not carried over", n.word));
                None
            }
        }
    }
}

fn is_checker(w: &str) -> bool {
    w.ends_with("_CHECK") || w == "HTTP_GET" || w == "SSL_GET"
}

/// A fwmark service's server: the address without its port, and the port moved to every
/// check that connects (keepalived's checks connect to the real server's port).
fn fwmark_server(s: &mut emit::Server) {
    let Some(Value::Str(addr)) = s.table.value("address").cloned() else {
        return;
    };
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<i64>().ok());
    if let Some(e) = s.table.entries.iter_mut().find(|e| e.key == "address") {
        e.value = Value::str(strip_port(&addr));
    }
    if let Some(port) = port {
        for c in &mut s.checks {
            let connects =
                !matches!(c.value("type"), Some(Value::Str(k)) if k == "exec" || k == "ping");
            if connects && c.value("port").is_none() {
                let at = c
                    .entries
                    .iter()
                    .position(|e| e.key == "interval")
                    .unwrap_or(c.entries.len());
                c.entries.insert(
                    at,
                    emit::Entry {
                        comments: vec![
                            "a fwmark service's servers have no port: the check names it".into(),
                        ],
                        key: "port".into(),
                        value: Value::Int(port),
                    },
                );
            }
        }
    }
}

fn strip_port(addr: &str) -> String {
    if let Some(rest) = addr.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest).to_string()
    } else {
        addr.rsplit_once(':')
            .map(|(a, _)| a)
            .unwrap_or(addr)
            .to_string()
    }
}

/// `ip:port`, with IPv6 addresses in brackets.
pub(crate) fn sockaddr(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn member_text(m: &Member) -> String {
    match m {
        Member::Addr(ip, port) => sockaddr(*ip, *port),
        Member::Fwmark(mark) => format!("fwmark {mark}"),
    }
}

/// The addresses of a `virtual_server_group` member: `10.0.0.1` or a range `10.0.0.1-10`
/// whose end replaces the last byte (IPv4) or the last group (IPv6, hexadecimal), as
/// keepalived's check_parser.c reads it.
fn expand_range(text: &str) -> Result<Vec<IpAddr>, String> {
    let (first, last) = match text.rsplit_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let ip: IpAddr = first
        .parse()
        .map_err(|_| "not an address or range".to_string())?;
    let Some(last) = last else {
        return Ok(vec![ip]);
    };
    match ip {
        IpAddr::V4(a) => {
            let end: u32 = last
                .parse()
                .map_err(|_| "range end is not a number".to_string())?;
            let start = u32::from(a.octets()[3]);
            if end < start || end > 255 {
                return Err(format!("range end {end} must be from {start} to 255"));
            }
            let base = u32::from(a) & !0xff;
            Ok((start..=end)
                .map(|b| IpAddr::V4((base | b).into()))
                .collect())
        }
        IpAddr::V6(a) => {
            let end = u32::from_str_radix(last, 16)
                .map_err(|_| "range end is not hexadecimal".to_string())?;
            let start = u32::from(a.segments()[7]);
            if end < start || end > 0xffff {
                return Err(format!("range end {end:x} must be from {start:x} to ffff"));
            }
            if end - start >= MAX_RANGE {
                return Err(format!(
                    "range of {} addresses is wider than {MAX_RANGE}; not expanded",
                    end - start + 1
                ));
            }
            let base = u128::from(a) & !0xffff;
            Ok((start..=end)
                .map(|b| IpAddr::V6((base | u128::from(b)).into()))
                .collect())
        }
    }
}

/// lvs-hc's quorum (a number of servers) for keepalived's (a total weight), and a comment when
/// the conversion is not exact.
fn quorum_count(q: i64, weights: &[i64]) -> (i64, Option<String>) {
    let n = weights.len() as i64;
    let total: i64 = weights.iter().sum();
    if total < q {
        return (n, Some(format!("the servers' weights add up to {total} only: keepalived's quorum is never met; lvs-hc's quorum is set to all {n} servers")));
    }
    let equal = weights.iter().all(|w| *w == weights[0]);
    if equal && weights[0] > 0 {
        let w = weights[0];
        return ((q + w - 1) / w, None);
    }
    // Unequal weights: the fewest servers whose smallest weights reach q, so that any that many
    // healthy servers carry at least keepalived's quorum weight.
    let mut sorted = weights.to_vec();
    sorted.sort_unstable();
    let mut sum = 0;
    for (i, w) in sorted.iter().enumerate() {
        sum += w;
        if sum >= q {
            let k = i as i64 + 1;
            return (k, Some(format!("weights differ, so this is approximate: {k} servers, the fewest whose smallest weights reach {q}")));
        }
    }
    (n, Some("approximate".into()))
}

/// The argv for a MISC_CHECK's misc_path, and a comment when it changed shape.
fn misc_argv(path: &str, dynamic: bool) -> (Vec<String>, Option<String>) {
    const SHELL: &[char] = &[
        '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
        '=', '%', '{', '}', '\n',
    ];
    let words: Vec<String> = path.split_whitespace().map(str::to_string).collect();
    let plain = !path.contains(SHELL) && words.first().is_some_and(|w| w.starts_with('/'));
    if dynamic {
        // keepalived's misc_dynamic (check_misc.c): exit 0 up, 1 down, 2 to 255 up with weight
        // code - 2. lvs-hc reads the weight from a last output line `weight=N`.
        let run = if plain {
            "\"$0\" \"$@\"".to_string()
        } else {
            path.to_string()
        };
        let script = format!(
            "{run}\nc=$?\nif [ \"$c\" -ge 2 ]; then echo \"weight=$((c - 2))\"; exit 0; fi\nexit \"$c\""
        );
        let mut argv = vec!["/bin/sh".to_string(), "-c".to_string(), script];
        if plain {
            argv.extend(words);
        }
        return (
            argv,
            Some("misc_dynamic: wrapped in a /bin/sh adapter that turns exit codes 2-255 into `weight=code-2` on standard output, which lvs-hc reads".into()),
        );
    }
    if plain {
        (words, None)
    } else {
        (
            vec!["/bin/sh".into(), "-c".into(), path.to_string()],
            Some("has shell syntax or no absolute program path: run by /bin/sh -c (lvs-hc runs an argv without a shell); check the quoting".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::MemFs;

    fn words(line: &str) -> Vec<String> {
        split_line(line)
            .into_iter()
            .map(|t| match t {
                TokenKind::Word(w) => w,
                TokenKind::Open => "{".into(),
                TokenKind::Close => "}".into(),
                TokenKind::Eol => "EOL".into(),
            })
            .collect()
    }

    #[test]
    fn comments_start_with_hash_or_bang_outside_quotes() {
        assert_eq!(words("delay_loop 6 # six"), ["delay_loop", "6"]);
        assert_eq!(words("! whole line"), Vec::<String>::new());
        assert_eq!(words("lb_algo rr! comment"), ["lb_algo", "rr"]);
        assert_eq!(
            words(r#"misc_path "/bin/check --tag #1 ! x""#),
            ["misc_path", "/bin/check --tag #1 ! x"]
        );
    }

    #[test]
    fn braces_are_words_of_their_own() {
        assert_eq!(words("url{path /}"), ["url", "{", "path", "/", "}"]);
        assert_eq!(
            words("TCP_CHECK { connect_timeout 3 }"),
            ["TCP_CHECK", "{", "connect_timeout", "3", "}"]
        );
    }

    fn tree(files: &[(&str, &str)]) -> (Result<Vec<Node>, ImportError>, Vec<Note>) {
        let fs = MemFs::new(files);
        let mut notes = Vec::new();
        let r = tokenize(&fs, Path::new(files[0].0), &mut notes).and_then(|t| parse(&t));
        (r, notes)
    }

    fn shape(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let mut s = format!(
                    "{}:{}",
                    n.file.file_name().unwrap().to_string_lossy(),
                    n.line
                );
                s.push(' ');
                s.push_str(&n.word);
                for a in &n.args {
                    s.push(' ');
                    s.push_str(a);
                }
                if let Some(c) = &n.children {
                    s.push_str(&format!(" {{{}}}", shape(c)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn blocks_nest_on_one_line_or_many_and_the_brace_may_be_on_the_next_line() {
        let (nodes, notes) = tree(&[(
            "/k/keepalived.conf",
            "virtual_server 10.0.0.1 80\n{\n  real_server 10.0.0.2 80 { weight 2 }\n  HTTP_GET { url { path / } }\n}\n",
        )]);
        assert!(notes.is_empty());
        assert_eq!(
            shape(&nodes.unwrap()),
            "keepalived.conf:1 virtual_server 10.0.0.1 80 {keepalived.conf:3 real_server 10.0.0.2 80 {keepalived.conf:3 weight 2}; keepalived.conf:4 HTTP_GET {keepalived.conf:4 url {keepalived.conf:4 path /}}}"
        );
    }

    #[test]
    fn unbalanced_braces_are_syntax_errors_with_file_and_line() {
        let (r, _) = tree(&[("/k/a.conf", "virtual_server 1.2.3.4 80 {\n  lb_algo rr\n")]);
        assert_eq!(
            r.unwrap_err().to_string(),
            "/k/a.conf:1: the `{` of `virtual_server` is never closed"
        );
        let (r, _) = tree(&[("/k/a.conf", "global_defs {\n}\n}\n")]);
        assert_eq!(
            r.unwrap_err().to_string(),
            "/k/a.conf:3: `}` without a matching `{`"
        );
        let (r, _) = tree(&[("/k/a.conf", "\n{\n")]);
        assert_eq!(
            r.unwrap_err().to_string(),
            "/k/a.conf:2: `{` without a keyword before it"
        );
    }

    #[test]
    fn includes_are_globbed_relative_to_the_including_file_and_nest() {
        let (nodes, notes) = tree(&[
            (
                "/etc/keepalived/keepalived.conf",
                "global_defs {\n}\ninclude conf.d/*.conf\nlast 1\n",
            ),
            ("/etc/keepalived/conf.d/b.conf", "b 1\n"),
            (
                "/etc/keepalived/conf.d/a.conf",
                "a 1\ninclude sub/inner.conf\n",
            ),
            ("/etc/keepalived/conf.d/sub/inner.conf", "inner 1\n"),
            ("/etc/keepalived/conf.d/skip.txt", "no 1\n"),
        ]);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            shape(&nodes.unwrap()),
            "keepalived.conf:1 global_defs {}; a.conf:1 a 1; inner.conf:1 inner 1; b.conf:1 b 1; keepalived.conf:4 last 1"
        );
    }

    #[test]
    fn an_include_may_open_a_block_that_the_including_file_closes() {
        let (nodes, _) = tree(&[
            (
                "/k/main.conf",
                "virtual_server 1.2.3.4 80 {\ninclude rs.conf\n}\n",
            ),
            ("/k/rs.conf", "real_server 1.2.3.5 80 {\n weight 3\n}\n"),
        ]);
        assert_eq!(
            shape(&nodes.unwrap()),
            "main.conf:1 virtual_server 1.2.3.4 80 {rs.conf:1 real_server 1.2.3.5 80 {rs.conf:2 weight 3}}"
        );
    }

    #[test]
    fn blocks_nested_without_end_are_a_syntax_error_not_a_deep_tree() {
        let text = "a {".repeat(100_000);
        let tokens: Vec<Token> = text
            .lines()
            .flat_map(split_line)
            .map(|kind| Token {
                kind,
                file: Rc::new(PathBuf::from("deep.conf")),
                line: 1,
            })
            .collect();
        match parse(&tokens) {
            Err(ImportError::Syntax { message, .. }) => {
                assert_eq!(
                    message,
                    format!("blocks nested more than {MAX_NESTING} deep")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn files_included_again_and_again_are_read_within_a_budget() {
        // Each level includes the next twice: 2^20 reads below the depth limit, no cycle.
        let mut fs = MemFs::default();
        for level in 0..20 {
            fs.files.insert(
                PathBuf::from(format!("/k/l{level}.conf")),
                format!("include l{n}.conf\ninclude l{n}.conf\n", n = level + 1),
            );
        }
        fs.files.insert(PathBuf::from("/k/l20.conf"), "x\n".into());
        let mut notes = Vec::new();
        let tokens = tokenize(&fs, Path::new("/k/l0.conf"), &mut notes).unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.text.contains("more than 1000 files read in all")),
            "{notes:?}"
        );
        // The files read before the budget ran out are all there, and no more.
        assert!(tokens.len() < 2 * MAX_FILES_READ, "{}", tokens.len());
    }

    #[test]
    fn include_cycles_and_missing_files_are_reported_not_followed() {
        let (nodes, notes) = tree(&[
            (
                "/k/a.conf",
                "include b.conf\nx 1\ninclude missing.conf\ninclude none/*.conf\n",
            ),
            ("/k/b.conf", "y 1\ninclude a.conf\n"),
        ]);
        assert_eq!(shape(&nodes.unwrap()), "b.conf:1 y 1; a.conf:2 x 1");
        let notes: Vec<String> = notes.iter().map(ToString::to_string).collect();
        assert_eq!(
            notes,
            [
                "/k/b.conf:2: include a.conf: include cycle (/k/a.conf is already being read); not read again",
                "/k/a.conf:3: include /k/missing.conf: no such file",
            ]
        );
    }

    #[test]
    fn group_ranges_replace_the_last_byte_or_group() {
        let v4 = expand_range("10.0.0.1-3").unwrap();
        assert_eq!(
            v4.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        let v6 = expand_range("2001:db8::a-c").unwrap();
        assert_eq!(v6.len(), 3);
        assert_eq!(v6[2].to_string(), "2001:db8::c");
        assert!(expand_range("10.0.0.5-2").is_err());
        assert!(expand_range("10.0.0.5-300").is_err());
    }

    #[test]
    fn quorum_weight_becomes_a_count() {
        assert_eq!(quorum_count(2, &[1, 1, 1]), (2, None));
        assert_eq!(quorum_count(3, &[2, 2]), (2, None));
        assert_eq!(quorum_count(3, &[1, 2, 5]).0, 2);
        assert!(quorum_count(3, &[1, 2, 5]).1.is_some());
        assert_eq!(quorum_count(10, &[1, 1]).0, 2);
    }

    #[test]
    fn misc_path_is_split_unless_it_needs_a_shell() {
        assert_eq!(
            misc_argv("/usr/bin/check -p 80", false),
            (
                vec!["/usr/bin/check".into(), "-p".into(), "80".into()],
                None
            )
        );
        let (argv, why) = misc_argv("/usr/bin/check | grep ok", false);
        assert_eq!(argv, ["/bin/sh", "-c", "/usr/bin/check | grep ok"]);
        assert!(why.is_some());
        let (argv, _) = misc_argv("check_it 1.2.3.4", false);
        assert_eq!(argv[0], "/bin/sh");
    }

    #[test]
    fn misc_dynamic_exit_codes_become_weight_lines() {
        let (argv, why) = misc_argv("/usr/bin/check 10.0.0.2", true);
        assert!(why.unwrap().contains("adapter"));
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(argv[3..], ["/usr/bin/check", "10.0.0.2"]);
        // The adapter runs: exit 7 becomes weight=5 and a pass; 1 stays a failure.
        for (code, out, status) in [(7, "weight=5\n", 0), (1, "", 1), (0, "", 0)] {
            let o = std::process::Command::new("/bin/sh")
                .args(["-c", &argv[2], "/bin/sh", "-c", &format!("exit {code}")])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), out, "exit {code}");
            assert_eq!(o.status.code(), Some(status), "exit {code}");
        }
    }

    #[test]
    fn a_file_with_only_vrrp_is_an_error_that_keeps_its_notes() {
        let fs = MemFs::new(&[(
            "/k/keepalived.conf",
            "vrrp_instance VI_1 {\n state MASTER\n}\n",
        )]);
        match import(&fs, Path::new("/k/keepalived.conf")) {
            Err(ImportError::Empty { notes, .. }) => {
                assert_eq!(notes.len(), 1);
                assert!(notes[0].text.contains("kept in keepalived"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lvs_sync_daemon_becomes_sync_with_both_roles_and_the_instances_router_id() {
        let conf =
            "global_defs {\n  router_id A\n  lvs_sync_daemon eth1 VI_1 maxlen 1400 port 8849\n}\n\
                    vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n}\n\
                    virtual_server 192.168.0.101 80 {\n  lb_kind DR\n  protocol TCP\n  \
                    real_server 192.168.0.179 80 {\n    TCP_CHECK {\n    }\n  }\n}\n";
        let fs = MemFs::new(&[("/k/keepalived.conf", conf)]);
        let imported = import(&fs, Path::new("/k/keepalived.conf")).unwrap();
        let config = lvs_hc_core::Config::from_toml(&imported.toml, "imported")
            .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
        let sync = config.sync.expect("[sync]");
        assert_eq!(sync.interface, "eth1");
        assert_eq!(sync.sync_id, 51, "keepalived's default: the VRID");
        assert_eq!(sync.max_len, Some(1400));
        assert_eq!(sync.port, Some(8849));
        assert_eq!(sync.roles.len(), 2, "both roles");
        assert!(imported
            .toml
            .contains("# keepalived's default: VI_1's virtual_router_id\n"));
        assert!(imported.notes.iter().any(|n| n.line == 3
            && n.text
                .starts_with("`lvs_sync_daemon` carried over as [sync]")));

        let conf = conf.replace("maxlen 1400 port 8849", "id 7 group 224.0.0.90 bogus 1");
        let fs = MemFs::new(&[("/k/keepalived.conf", conf.as_str())]);
        let imported = import(&fs, Path::new("/k/keepalived.conf")).unwrap();
        let sync = lvs_hc_core::Config::from_toml(&imported.toml, "imported")
            .unwrap()
            .sync
            .unwrap();
        assert_eq!(sync.sync_id, 7);
        assert_eq!(sync.group, Some("224.0.0.90".parse().unwrap()));
        assert!(imported
            .notes
            .iter()
            .any(|n| n.text == "`lvs_sync_daemon` option `bogus` is unknown; not carried over"));
    }
}
