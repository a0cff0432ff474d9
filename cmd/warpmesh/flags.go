package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/warpmesh/warpmesh/internal/logflag"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/warpmesh/warpmesh/engine"
)

// envPrefix prefixes the environment variable that stands in for each
// flag: --group-port is WARPMESH_GROUP_PORT. A flag on the command line wins.
const envPrefix = "WARPMESH_"

// envName returns the environment variable for a flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet returns a flag set whose errors come back to the caller
// instead of printing usage; -h prints synopsis, the flags with their
// defaults and their environment variables.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: warpmesh %s\n\n", synopsis)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		fmt.Fprintf(stderr, "\nEvery flag can also be set by environment variable, e.g. --group-port by %s;\n"+
			"a flag on the command line wins. Both -flag and --flag are accepted.\n", envName("group-port"))
	}
	return fs
}

// parseFlags parses args, then fills every flag not given from its
// WARPMESH_* variable. Errors are usage errors; -h returns flag.ErrHelp
// after printing usage (once: Parse prints it).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // Parse has printed the usage
		}
		return &usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageErrorf("invalid value %q for %s (--%s): %v", v, envName(f.Name), f.Name, e)
		}
	})
	return err
}

// nodeFlags are the flags that build engine.Options, shared by node and
// invalidate. Zero values select the engine's defaults.
type nodeFlags struct {
	port, groupPort                 int
	bind, group, iface, advertise   string
	peers, cluster, keyFile, nodeID string
	auth                            string
	heartbeat, suspect, dead        time.Duration
	unicastOnly, echoLocal, gso     bool
	frameSize, fanout, directLimit  int
	hopLimit, publishRing, batch    int
	recvBuffer, sendBuffer          int
	rtBuffer, rtRate                int
	repairTimeout                   time.Duration
}

// register adds the node flags to fs. defaultPort is the port flag's
// default (the engine's for node, 0 = any free port for one-shot tools).
func (f *nodeFlags) register(fs *flag.FlagSet, defaultPort int) {
	fs.IntVar(&f.port, "port", defaultPort, "UDP `port` to listen on; 0 picks a free one")
	fs.StringVar(&f.bind, "bind", "", "local `IP` to bind; :: is dual stack (default 0.0.0.0, or :: when --advertise, --group or a seed is IPv6 or the host has no IPv4)")
	fs.StringVar(&f.group, "group", "", "multicast `group` for discovery and data, IPv4 or IPv6 such as ff12::7946 (default "+engine.DefaultGroup+", "+engine.DefaultGroup6+" when advertising IPv6; with --peers and no --group: unicast only)")
	fs.IntVar(&f.groupPort, "group-port", 0, "UDP `port` of the multicast group (default: --port); nodes sharing a host need a common one")
	fs.StringVar(&f.iface, "interface", "", "network `interface` for multicast, e.g. lo (default: the one holding the advertised address)")
	fs.StringVar(&f.peers, "peers", "", "comma-separated seeds, `seed,...`: ip:port, [ipv6]:port, name:port (every A and AAAA record, re-resolved each heartbeat: a headless Service, tasks.<service>) or dnssrv+_service._proto.name (SRV); one reachable seed is enough")
	fs.StringVar(&f.advertise, "advertise", "", "`ip[:port]` other members reach this node at (default: the bind address, or this host's first global address of the family the seeds use)")
	fs.DurationVar(&f.heartbeat, "heartbeat", engine.DefaultHeartbeat, "membership keep-alive `interval`")
	fs.DurationVar(&f.suspect, "suspect-after", 0, "`silence` after which a member is suspect (default 3 × heartbeat)")
	fs.DurationVar(&f.dead, "dead-after", 0, "`silence` after which a member is dead (default 2 × suspect-after)")
	fs.StringVar(&f.cluster, "cluster", engine.DefaultCluster, "mesh `name`; meshes with different names ignore each other")
	fs.StringVar(&f.keyFile, "key-file", "", "`file` of 32-byte keys, hex or base64, one per line (first seals, all open); frames are authenticated")
	fs.StringVar(&f.auth, "auth", "required", "with --key-file, how plaintext frames are treated, for rolling authentication in: `mode` required, accept-plaintext (seal, accept both) or send-plaintext (send plaintext, accept both)")
	fs.StringVar(&f.nodeID, "node-id", "", "node id, up to 16 `hex` digits (default random); a restart with the same id rejoins with a higher epoch")
	fs.BoolVar(&f.unicastOnly, "unicast-only", false, "disable multicast entirely, even with --group")
	fs.IntVar(&f.frameSize, "frame-size", engine.DefaultMaxFrameSize, "largest datagram sent, in `bytes`")
	fs.IntVar(&f.fanout, "fanout", engine.DefaultFanout, "`members` each frame goes to (and is relayed to) in meshes larger than --direct-limit")
	fs.IntVar(&f.directLimit, "direct-limit", engine.DefaultDirectLimit, "largest mesh (`members`) in which the origin sends to everyone directly")
	fs.IntVar(&f.hopLimit, "hop-limit", engine.DefaultHopLimit, "`hops` a relayed frame may take")
	fs.IntVar(&f.publishRing, "publish-ring", engine.DefaultPublishRing, "publish ring size in `bytes` (power of two)")
	fs.IntVar(&f.batch, "batch-size", engine.DefaultBatchSize, "`datagrams` per recvmmsg/sendmmsg")
	fs.IntVar(&f.recvBuffer, "recv-buffer", engine.DefaultSocketBuffer, "socket receive buffer in `bytes` (the kernel may grant less)")
	fs.IntVar(&f.sendBuffer, "send-buffer", engine.DefaultSocketBuffer, "socket send buffer in `bytes` (the kernel may grant less)")
	fs.BoolVar(&f.gso, "gso", true, "send each destination's run of frames as one UDP GSO message (ignored without kernel support); --gso=false turns it off")
	fs.IntVar(&f.rtBuffer, "retransmit-buffer", 0, "memory in `bytes` for recent frames kept to answer NACKs (0: the engine's default, 4 MiB)")
	fs.IntVar(&f.rtRate, "retransmit-rate", 0, "most retransmitted `frames` per second (0: the engine's default, 100000)")
	fs.DurationVar(&f.repairTimeout, "repair-timeout", 0, "how long a gap may stay open before it is given up with a gap event, at least 10ms (0: the engine's default, 5s)")
	fs.BoolVar(&f.echoLocal, "echo-local", false, "deliver this node's own invalidations to its handlers (and --print) too")
}

// options turns the flags into engine.Options. It checks what the engine
// cannot (syntax of --node-id, --key-file contents, --port 0) and leaves the
// rest to engine.New, whose errors optionError maps back to flag names.
func (f *nodeFlags) options(log *slog.Logger) (engine.Options, error) {
	o := engine.Options{
		Port:             f.port,
		GroupPort:        f.groupPort,
		BindAddr:         f.bind,
		Group:            f.group,
		Interface:        f.iface,
		AdvertiseAddr:    f.advertise,
		Heartbeat:        f.heartbeat,
		SuspectAfter:     f.suspect,
		DeadAfter:        f.dead,
		Cluster:          f.cluster,
		UnicastOnly:      f.unicastOnly,
		MaxFrameSize:     f.frameSize,
		Fanout:           f.fanout,
		DirectLimit:      f.directLimit,
		HopLimit:         f.hopLimit,
		PublishRing:      f.publishRing,
		BatchSize:        f.batch,
		RecvBuffer:       f.recvBuffer,
		SendBuffer:       f.sendBuffer,
		DisableGSO:       !f.gso,
		RetransmitBuffer: f.rtBuffer,
		RetransmitRate:   f.rtRate,
		RepairTimeout:    f.repairTimeout,
		EchoLocal:        f.echoLocal,
		Logger:           log,
	}
	for _, p := range strings.Split(f.peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.Peers = append(o.Peers, p)
		}
	}
	if f.cluster == "" {
		return o, usageErrorf("invalid --cluster: must not be empty")
	}
	for name, v := range map[string]int{"port": f.port, "group-port": f.groupPort} {
		if v < 0 || v > 65535 {
			return o, usageErrorf("invalid --%s=%d: must be 0..65535", name, v)
		}
	}
	for name, v := range map[string]time.Duration{"heartbeat": f.heartbeat, "suspect-after": f.suspect, "dead-after": f.dead,
		"repair-timeout": f.repairTimeout} {
		if v < 0 {
			return o, usageErrorf("invalid --%s=%v: must not be negative", name, v)
		}
	}
	for name, v := range map[string]int{"retransmit-buffer": f.rtBuffer, "retransmit-rate": f.rtRate} {
		if v < 0 {
			return o, usageErrorf("invalid --%s=%d: must not be negative (0 selects the default)", name, v)
		}
	}
	if f.heartbeat == 0 {
		return o, usageErrorf("invalid --heartbeat=0: must be positive")
	}
	for name, v := range map[string]int{"frame-size": f.frameSize, "fanout": f.fanout, "direct-limit": f.directLimit,
		"hop-limit": f.hopLimit, "publish-ring": f.publishRing, "batch-size": f.batch, "recv-buffer": f.recvBuffer, "send-buffer": f.sendBuffer} {
		if v <= 0 {
			return o, usageErrorf("invalid --%s=%d: must be positive", name, v)
		}
	}
	if f.nodeID != "" {
		id, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(f.nodeID), "0x"), 16, 64)
		if err != nil || id == 0 {
			return o, usageErrorf("invalid --node-id=%q: want 1 to 16 hex digits, not all zero", f.nodeID)
		}
		o.NodeID = id
	}
	if f.keyFile != "" {
		keys, err := readKeyFile(f.keyFile)
		if err != nil {
			return o, &usageError{fmt.Errorf("invalid --key-file: %w", err)}
		}
		if err := setKeyring(&o, keys, f.auth); err != nil {
			return o, err
		}
	} else if f.auth != "required" {
		return o, usageErrorf("--auth=%s needs --key-file", f.auth)
	}
	if f.port == 0 {
		p, err := freePort(f.bind)
		if err != nil {
			return o, fmt.Errorf("--port 0: %w", err)
		}
		o.Port = p
	}
	return o, nil
}

// optionFlags names the flag behind each engine option.
var optionFlags = map[string]string{
	"Port": "port", "GroupPort": "group-port", "BindAddr": "bind", "Group": "group",
	"Interface": "interface", "Peers": "peers", "AdvertiseAddr": "advertise",
	"Heartbeat": "heartbeat", "SuspectAfter": "suspect-after", "DeadAfter": "dead-after",
	"Cluster": "cluster", "NodeID": "node-id", "MaxFrameSize": "frame-size",
	"Fanout": "fanout", "DirectLimit": "direct-limit", "HopLimit": "hop-limit",
	"PublishRing": "publish-ring", "BatchSize": "batch-size", "RecvBuffer": "recv-buffer",
	"SendBuffer": "send-buffer", "Keyring": "key-file", "Auth": "auth",
	"RetransmitBuffer": "retransmit-buffer", "RetransmitRate": "retransmit-rate",
	"RepairTimeout": "repair-timeout", "DisableGSO": "gso",
}

// newNode starts a node; an option the engine rejects becomes a usage error
// that names the flag.
func newNode(o engine.Options) (*engine.Node, error) {
	n, err := engine.New(o)
	var oe *engine.OptionError
	if errors.As(err, &oe) {
		name := optionFlags[oe.Option]
		if name == "" {
			return nil, &usageError{err}
		}
		return nil, usageErrorf("invalid --%s=%v: %s", name, oe.Value, oe.Reason)
	}
	return n, err
}

// freePort asks the kernel for a free UDP port on bind (any address when
// empty). Another process may take it before the node binds it; the node
// then fails to start with a clear error.
func freePort(bind string) (int, error) {
	ip := net.IPv4zero
	if bind != "" {
		if ip = net.ParseIP(bind); ip == nil {
			return 0, usageErrorf("invalid --bind=%q: not an IP address", bind)
		}
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// logFlags are --log-format and --log-level (shared with warpmesh-bridge).
type logFlags struct{ logflag.Flags }

func (f *logFlags) register(fs *flag.FlagSet) { f.Register(fs) }

// logger is the logger the flags select; a bad value is a usage error.
func (f *logFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	log, err := f.Logger(stderr)
	if err != nil {
		return nil, &usageError{err}
	}
	return log, nil
}
