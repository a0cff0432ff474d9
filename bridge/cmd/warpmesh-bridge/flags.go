package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/warpmesh/warpmesh/internal/logflag"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/warpmesh/warpmesh/bridge"
	"github.com/warpmesh/warpmesh/engine"
)

// envPrefix prefixes the environment variable standing in for each flag,
// as for warpmesh node: --nats-url is WARPMESH_NATS_URL.
const envPrefix = "WARPMESH_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func newFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("warpmesh-bridge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: warpmesh-bridge [flags]\n       warpmesh-bridge demo    (three meshes on loopback joined by an embedded nats-server)\n\n")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		fmt.Fprintf(stderr, "\nEvery flag can also be set by environment variable, e.g. --nats-url by %s;\n"+
			"a flag on the command line wins. Both -flag and --flag are accepted.\n", envName("nats-url"))
	}
	return fs
}

// parseFlags parses args, then fills every flag not given from its
// WARPMESH_* variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return err
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
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageErrorf("invalid value %q for %s (--%s): %v", v, envName(f.Name), f.Name, e)
			}
		}
	})
	return err
}

type bridgeFlags struct {
	// mesh side
	port, groupPort                      int
	bind, group, iface, advertise, peers string
	cluster, keyFile                     string
	heartbeat                            time.Duration
	unicastOnly                          bool
	// NATS side
	name, natsURL, prefix, remotes      string
	creds, nkey, tlsCA, tlsCert, tlsKey string
	user, password, token               string
	maxBatch, exportQueue               int
	keepAlive, streamTimeout            time.Duration
	jetstream                           bool
	durable                             string
	jsMemory, jsFlushCutOff             bool
	jsMaxAge                            time.Duration
	jsReplicas                          int
	// process
	http string
	log  logflag.Flags
}

func (f *bridgeFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.port, "port", engine.DefaultPort, "UDP `port` of the bridge's node in its mesh")
	fs.StringVar(&f.bind, "bind", "", "local `IP` to bind (default 0.0.0.0)")
	fs.StringVar(&f.group, "group", "", "IPv4 multicast `group` of the mesh (default "+engine.DefaultGroup+"; with --peers and no --group: unicast only)")
	fs.IntVar(&f.groupPort, "group-port", 0, "UDP `port` of the multicast group (default: --port)")
	fs.StringVar(&f.iface, "interface", "", "network `interface` for multicast, e.g. lo")
	fs.StringVar(&f.peers, "peers", "", "comma-separated seeds of the mesh, `host:port,...`")
	fs.StringVar(&f.advertise, "advertise", "", "`ip[:port]` the mesh reaches the bridge at")
	fs.DurationVar(&f.heartbeat, "heartbeat", engine.DefaultHeartbeat, "membership keep-alive `interval`")
	fs.StringVar(&f.cluster, "cluster", engine.DefaultCluster, "mesh `name` (the engine's cluster)")
	fs.StringVar(&f.keyFile, "key-file", "", "the mesh's key `file` (32-byte keys, hex or base64, one per line); stays local to the mesh")
	fs.BoolVar(&f.unicastOnly, "unicast-only", false, "disable multicast entirely")

	fs.StringVar(&f.name, "name", "", "this mesh's `name` on NATS: letters, digits, '-', '_' (default: --cluster)")
	fs.StringVar(&f.natsURL, "nats-url", nats.DefaultURL, "NATS server `URLs`, comma-separated")
	fs.StringVar(&f.prefix, "subject-prefix", bridge.DefaultSubjectPrefix, "subject `prefix`: batches go to <prefix>.inv.<name>")
	fs.StringVar(&f.remotes, "remotes", "", "comma-separated remote mesh `names` to import (default: every mesh; required with --jetstream)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials `file` (JWT and NKey seed)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS NKey seed `file`")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "`file` of CA certificates that sign the NATS servers' certificates")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "client certificate `file` for NATS TLS (with --nats-tls-key)")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "client key `file` for NATS TLS")
	fs.StringVar(&f.user, "nats-user", "", "NATS `user` (with --nats-password)")
	fs.StringVar(&f.password, "nats-password", "", "NATS `password`")
	fs.StringVar(&f.token, "nats-token", "", "NATS `token`")
	fs.IntVar(&f.maxBatch, "max-batch", bridge.DefaultMaxBatchBytes, "largest NATS message, in `bytes`")
	fs.IntVar(&f.exportQueue, "export-queue", bridge.DefaultExportQueue, "full `batches` that may wait for NATS")
	fs.DurationVar(&f.keepAlive, "keepalive", bridge.DefaultKeepAlive, "idle `interval` after which an empty batch and a presence beacon go out")
	fs.DurationVar(&f.streamTimeout, "stream-timeout", 0, "`silence` after which a remote exporter or a sibling bridge is gone (default 3 × keepalive)")
	fs.BoolVar(&f.jetstream, "jetstream", false, "carry batches through JetStream (replay instead of flush on reconnects and restarts)")
	fs.StringVar(&f.durable, "durable", "", "with --jetstream: this mesh's consumer `name`, shared by its bridges (default: --name)")
	fs.BoolVar(&f.jsMemory, "jetstream-memory", false, "with --jetstream: keep streams in memory")
	fs.DurationVar(&f.jsMaxAge, "jetstream-max-age", 0, "with --jetstream: how long a stream keeps batches (default 1h)")
	fs.IntVar(&f.jsReplicas, "jetstream-replicas", 0, "with --jetstream: stream `replicas` (default 1)")
	fs.BoolVar(&f.jsFlushCutOff, "jetstream-flush-while-cut-off", false, "with --jetstream: flush the mesh every --stream-timeout while disconnected from NATS (staleness bounded by that, not by the outage)")

	fs.StringVar(&f.http, "http", "", "serve the admin endpoint on `addr` (host:port): /healthz /readyz /stats /metrics")
	f.log.Register(fs)
}

// logger is the logger --log-format and --log-level select; a bad value
// is a usage error.
func (f *bridgeFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	log, err := f.log.Logger(stderr)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return log, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// options turns the flags into bridge.Options; bridge.New checks the rest
// and names the option.
func (f *bridgeFlags) options(log *slog.Logger) (bridge.Options, error) {
	o := bridge.Options{
		Mesh: engine.Options{
			Port: f.port, GroupPort: f.groupPort, BindAddr: f.bind, Group: f.group, Interface: f.iface,
			Peers: splitList(f.peers), AdvertiseAddr: f.advertise, Heartbeat: f.heartbeat,
			Cluster: f.cluster, UnicastOnly: f.unicastOnly, Logger: log,
		},
		Name: f.name, NATSURL: f.natsURL, SubjectPrefix: f.prefix, Remotes: splitList(f.remotes),
		MaxBatchBytes: f.maxBatch, ExportQueue: f.exportQueue, KeepAlive: f.keepAlive,
		StreamTimeout: f.streamTimeout, Logger: log,
	}
	if f.cluster == "" {
		return o, usageErrorf("invalid --cluster: must not be empty")
	}
	if f.port <= 0 || f.port > 65535 {
		return o, usageErrorf("invalid --port=%d: must be 1..65535", f.port)
	}
	for name, v := range map[string]int{"max-batch": f.maxBatch, "export-queue": f.exportQueue} {
		if v <= 0 {
			return o, usageErrorf("invalid --%s=%d: must be positive", name, v)
		}
	}
	for name, v := range map[string]time.Duration{"heartbeat": f.heartbeat, "keepalive": f.keepAlive} {
		if v <= 0 {
			return o, usageErrorf("invalid --%s=%v: must be positive", name, v)
		}
	}
	if f.keyFile != "" {
		keys, err := readKeyFile(f.keyFile)
		if err != nil {
			return o, usageErrorf("invalid --key-file: %v", err)
		}
		if o.Mesh.Keyring, err = engine.NewKeyring(keys...); err != nil {
			return o, usageErrorf("invalid --key-file: %v", err)
		}
	}
	switch {
	case f.creds != "" && f.nkey != "":
		return o, usageErrorf("--nats-creds and --nats-nkey exclude each other")
	case f.creds != "":
		o.NATSOptions = append(o.NATSOptions, nats.UserCredentials(f.creds))
	case f.nkey != "":
		opt, err := nats.NkeyOptionFromSeed(f.nkey)
		if err != nil {
			return o, usageErrorf("invalid --nats-nkey: %v", err)
		}
		o.NATSOptions = append(o.NATSOptions, opt)
	}
	if f.user != "" {
		o.NATSOptions = append(o.NATSOptions, nats.UserInfo(f.user, f.password))
	} else if f.password != "" {
		return o, usageErrorf("--nats-password needs --nats-user")
	}
	if f.token != "" {
		o.NATSOptions = append(o.NATSOptions, nats.Token(f.token))
	}
	if f.tlsCA != "" {
		o.NATSOptions = append(o.NATSOptions, nats.RootCAs(f.tlsCA))
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return o, usageErrorf("--nats-tls-cert and --nats-tls-key go together")
	}
	if f.tlsCert != "" {
		o.NATSOptions = append(o.NATSOptions, nats.ClientCert(f.tlsCert, f.tlsKey))
	}
	if f.jetstream {
		o.JetStream = &bridge.JetStreamOptions{Durable: f.durable, MaxAge: f.jsMaxAge, Memory: f.jsMemory, Replicas: f.jsReplicas,
			FlushWhileCutOff: f.jsFlushCutOff}
	} else if f.durable != "" || f.jsMemory || f.jsMaxAge != 0 || f.jsReplicas != 0 || f.jsFlushCutOff {
		return o, usageErrorf("--durable and --jetstream-* need --jetstream")
	}
	return o, nil
}

// readKeyFile reads 32-byte keys, hex or base64, one per line (blank lines
// and # comments skipped), primary first — the format of warpmesh node.
func readKeyFile(path string) ([][]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var keys [][]byte
	sc := bufio.NewScanner(fh)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := hex.DecodeString(s)
		if err != nil || len(k) != 32 {
			if k, err = base64.StdEncoding.DecodeString(s); err != nil || len(k) != 32 {
				return nil, fmt.Errorf("%s:%d: want 32 bytes, hex or base64", path, line)
			}
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", path)
	}
	return keys, nil
}
