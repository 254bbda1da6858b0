# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lvs_hc_global_optspecs
    string join \n h/help V/version
end

function __fish_lvs_hc_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lvs_hc_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lvs_hc_using_subcommand
    set -l cmd (__fish_lvs_hc_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -s V -l version -d 'Print version'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "run" -d 'Run the daemon: probe every real server and keep the IPVS table as the probes justify'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "reload" -d 'Ask the running daemon to reread its configuration; prints what changed or the error'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "server" -d 'Take a real server out of service by hand, or put it back: drain, disable, enable'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "status" -d 'Print the running daemon\'s view: the table like `ipvsadm -Ln`, with health, reason and time since the last change'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "setup" -d 'Prepare a real server or the director (addresses, ARP and forwarding settings)'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "doctor" -d 'Look for what keeps a configuration from working on this director, and say how to fix it'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "withdraw" -d 'Delete every route lvs-hc announces VIPs with (`[announce]`): all routes of its protocol in its table, whoever added them; routes of other protocols are left'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "check" -d 'Validate a configuration and print a summary; exits non-zero with the precise error'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "simulate" -d 'Run a configuration through the deterministic simulator and print what lvs-hc would do'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "table" -d 'Print the live IPVS table'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "plan" -d 'Print the ipvsadm commands that would make a table match the configuration'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "import" -d 'Convert a keepalived or ldirectord configuration to lvs-hc\'s TOML'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c lvs-hc -n "__fish_lvs_hc_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l backend -d 'How to read and change the kernel table' -r -f -a "netlink\t'The kernel\'s IPVS generic netlink family (no external program)'
ipvsadm\t'The `ipvsadm` program'
memory\t'A table in lvs-hc\'s own memory: try lvs-hc without IPVS or root'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l lock-file -d 'The lock file (default: `[daemon] lock_file`, else /run/lvs-hc/<config stem>.lock)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l api -d 'Where the read-only HTTP API listens: ADDR:PORT, unix:/PATH or off (default: `[daemon] api`)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l control -d 'The control socket (reload, commands): a path or off (default: `[daemon] control`, else the lock file\'s path ending in .sock)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l log-format -d 'Log format: text on a terminal and under systemd\'s journal, JSON lines otherwise' -r -f -a "auto\t'Text on a terminal or under journald, JSON otherwise'
text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l log-level -d 'Log level filter (error, warn, info, debug, trace, or a tracing directive). RUST_LOG overrides it' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l dry-run -d 'Probe and log the operations that would be applied; apply none'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -l cleanup-on-exit -d 'On SIGTERM or SIGINT, delete the services lvs-hc manages (default: leave the table)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand reload" -l control -d 'The daemon\'s control socket' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand reload" -s c -l config -d 'Find the control socket through this configuration (`[daemon] control`, else beside its lock file; default: /etc/lvs-hc/lvs-hc.toml, else /run/lvs-hc/lvs-hc.sock)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand reload" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and not __fish_seen_subcommand_from drain disable enable help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and not __fish_seen_subcommand_from drain disable enable help" -f -a "drain" -d 'Weight 0 now (no new connections), out of the table once its connections reach 0 or the drain timeout passes; it stays out until enabled'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and not __fish_seen_subcommand_from drain disable enable help" -f -a "disable" -d 'Out of the table now; still probed, so `status` shows its health'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and not __fish_seen_subcommand_from drain disable enable help" -f -a "enable" -d 'Back to health-checked service (with slow start when the service has it). A maintenance file or the server\'s agent may still hold it out: the output says so'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and not __fish_seen_subcommand_from drain disable enable help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -l service -d 'The service, when the server is in several: its name, or VIP:PORT (or `fwmark:N`)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -l reason -d 'Why, for `status`, the log and whoever comes next (one line, at most 200 characters)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -l control -d 'The daemon\'s control socket' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -s c -l config -d 'Find the control socket through this configuration (`[daemon] control`, else beside its lock file; default: /etc/lvs-hc/lvs-hc.toml, else /run/lvs-hc/lvs-hc.sock)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -l timeout -d 'The longest the drain may take, e.g. 10m (default: the service\'s drain_timeout when on_failure = "drain", else 5m)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -l all -d 'Every service that has the server (instead of an error when there are several)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -l service -d 'The service, when the server is in several: its name, or VIP:PORT (or `fwmark:N`)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -l reason -d 'Why, for `status`, the log and whoever comes next (one line, at most 200 characters)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -l control -d 'The daemon\'s control socket' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -s c -l config -d 'Find the control socket through this configuration (`[daemon] control`, else beside its lock file; default: /etc/lvs-hc/lvs-hc.toml, else /run/lvs-hc/lvs-hc.sock)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -l all -d 'Every service that has the server (instead of an error when there are several)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -l service -d 'The service, when the server is in several: its name, or VIP:PORT (or `fwmark:N`)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -l reason -d 'Why, for `status`, the log and whoever comes next (one line, at most 200 characters)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -l control -d 'The daemon\'s control socket' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -s c -l config -d 'Find the control socket through this configuration (`[daemon] control`, else beside its lock file; default: /etc/lvs-hc/lvs-hc.toml, else /run/lvs-hc/lvs-hc.sock)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -l all -d 'Every service that has the server (instead of an error when there are several)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Weight 0 now (no new connections), out of the table once its connections reach 0 or the drain timeout passes; it stays out until enabled'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Out of the table now; still probed, so `status` shows its health'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Back to health-checked service (with slow start when the service has it). A maintenance file or the server\'s agent may still hold it out: the output says so'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand server; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand status" -l api -d 'The daemon\'s read-only API: ADDR:PORT or unix:/PATH' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand status" -l control -d 'The daemon\'s control socket' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand status" -s c -l config -d 'Find the daemon through this configuration: its control socket when this user may use it, else its API (default: /etc/lvs-hc/lvs-hc.toml if it exists, else 127.0.0.1:9101)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand status" -l json -d 'Print the daemon\'s JSON status as it is'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand status" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and not __fish_seen_subcommand_from realserver director help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and not __fish_seen_subcommand_from realserver director help" -f -a "realserver" -d 'A real server: the VIP on lo (DR) or on a tunnel device (TUN), ARP settings'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and not __fish_seen_subcommand_from realserver director help" -f -a "director" -d 'The director: the configured VIPs on `[director] interface` (announced by gratuitous ARP as they are added); IP forwarding for NAT; with `via_vip` checks, `accept_local=1` and `rp_filter=0` on the interfaces toward those servers (and `all.rp_filter=0`)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and not __fish_seen_subcommand_from realserver director help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -l vip -d 'A virtual IP this server answers for. Repeatable (not needed with --undo)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -l mode -d 'Forwarding method the director uses towards this server' -r -f -a "dr\t'Direct routing: the VIP on lo, ARP for it suppressed'
tun\t'IP-in-IP tunnelling: the VIP on the tunnel device, reverse-path filtering relaxed'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -l state-dir -d 'Where earlier settings are remembered so --undo can restore them' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -l check -d 'Report what differs and exit 1 if anything does (2 on errors); change nothing'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -l undo -d 'Revert what `setup realserver` changed (as the state file records it)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from realserver" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -l interface -d 'Put the VIPs on this interface (overrides `[director] interface`; refused with `[sync]`)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -l state-dir -d 'Where earlier settings are remembered so --undo can restore them' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -l check -d 'Report what differs and exit 1 if anything does (2 on errors); change nothing'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -l undo -d 'Revert what `setup director` changed (as the state file records it; the configuration is not read)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from director" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "realserver" -d 'A real server: the VIP on lo (DR) or on a tunnel device (TUN), ARP settings'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "director" -d 'The director: the configured VIPs on `[director] interface` (announced by gratuitous ARP as they are added); IP forwarding for NAT; with `via_vip` checks, `accept_local=1` and `rp_filter=0` on the interfaces toward those servers (and `all.rp_filter=0`)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand setup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand doctor" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand withdraw" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand withdraw" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand check" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand check" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -l scenario -d 'What goes wrong' -r -f -a "kill\t''
blackhole\t''
slow\t''
error500\t''
wrong-page\t''
flap\t''
all-down\t''
drift\t''
ops-fail\t''
restart\t''
reload\t''"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -l seed -d 'The seed: the same seed, the same run' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -l duration -d 'Simulated time, e.g. 10m (default: long enough for several faults and recoveries); a duration with no room for a fault is refused (exit status 2)' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -l json -d 'Print JSON instead of text'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand table" -l backend -d 'How to read the kernel table' -r -f -a "netlink\t'The kernel\'s IPVS generic netlink family (no external program)'
ipvsadm\t'The `ipvsadm` program'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand table" -l format -d 'Output format' -r -f -a "save\t'`ipvsadm-save -n` format, byte for byte'
list\t'Like `ipvsadm -Ln`'
json\t'JSON with every setting and counter'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand table" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand plan" -s c -l config -d 'The configuration file (TOML)' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand plan" -l actual -d 'The current table: a file in `ipvsadm-save -n` format, `-` for standard input, or `kernel` for the live table. Without it the table is taken as empty' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand plan" -l backend -d 'How to read the live table with `--actual kernel`' -r -f -a "netlink\t'The kernel\'s IPVS generic netlink family (no external program)'
ipvsadm\t'The `ipvsadm` program'"
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand plan" -l down -d 'Take this real server as failed (ADDR:PORT, or ADDR for every port). Repeatable' -r
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and not __fish_seen_subcommand_from keepalived ldirectord help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and not __fish_seen_subcommand_from keepalived ldirectord help" -f -a "keepalived" -d 'keepalived.conf: its virtual_server sections and their checkers (includes followed; VRRP sections are reported as kept in keepalived)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and not __fish_seen_subcommand_from keepalived ldirectord help" -f -a "ldirectord" -d 'ldirectord.cf: its virtual sections, global settings and checks'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and not __fish_seen_subcommand_from keepalived ldirectord help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from keepalived" -s o -l output -d 'Write the TOML here instead of standard output' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from keepalived" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from ldirectord" -s o -l output -d 'Write the TOML here instead of standard output' -r -F
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from ldirectord" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "keepalived" -d 'keepalived.conf: its virtual_server sections and their checkers (includes followed; VRRP sections are reported as kept in keepalived)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "ldirectord" -d 'ldirectord.cf: its virtual sections, global settings and checks'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand completions" -s h -l help -d 'Print help'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "run" -d 'Run the daemon: probe every real server and keep the IPVS table as the probes justify'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "reload" -d 'Ask the running daemon to reread its configuration; prints what changed or the error'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "server" -d 'Take a real server out of service by hand, or put it back: drain, disable, enable'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "status" -d 'Print the running daemon\'s view: the table like `ipvsadm -Ln`, with health, reason and time since the last change'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "setup" -d 'Prepare a real server or the director (addresses, ARP and forwarding settings)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "doctor" -d 'Look for what keeps a configuration from working on this director, and say how to fix it'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "withdraw" -d 'Delete every route lvs-hc announces VIPs with (`[announce]`): all routes of its protocol in its table, whoever added them; routes of other protocols are left'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "check" -d 'Validate a configuration and print a summary; exits non-zero with the precise error'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "simulate" -d 'Run a configuration through the deterministic simulator and print what lvs-hc would do'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "table" -d 'Print the live IPVS table'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "plan" -d 'Print the ipvsadm commands that would make a table match the configuration'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "import" -d 'Convert a keepalived or ldirectord configuration to lvs-hc\'s TOML'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and not __fish_seen_subcommand_from run reload server status setup doctor withdraw check simulate table plan import completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "drain" -d 'Weight 0 now (no new connections), out of the table once its connections reach 0 or the drain timeout passes; it stays out until enabled'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "disable" -d 'Out of the table now; still probed, so `status` shows its health'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from server" -f -a "enable" -d 'Back to health-checked service (with slow start when the service has it). A maintenance file or the server\'s agent may still hold it out: the output says so'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "realserver" -d 'A real server: the VIP on lo (DR) or on a tunnel device (TUN), ARP settings'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from setup" -f -a "director" -d 'The director: the configured VIPs on `[director] interface` (announced by gratuitous ARP as they are added); IP forwarding for NAT; with `via_vip` checks, `accept_local=1` and `rp_filter=0` on the interfaces toward those servers (and `all.rp_filter=0`)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "keepalived" -d 'keepalived.conf: its virtual_server sections and their checkers (includes followed; VRRP sections are reported as kept in keepalived)'
complete -c lvs-hc -n "__fish_lvs_hc_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "ldirectord" -d 'ldirectord.cf: its virtual sections, global settings and checks'
