package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/warpmesh/warpmesh/engine"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultSubjectPrefix = "warpmesh"
	DefaultMaxBatchBytes = 64 << 10
	DefaultExportQueue   = 16
	DefaultKeepAlive     = time.Second
	DefaultDedupFrames   = 1 << 16
	DefaultMaxStreams    = 1024
	// MinBatchBytes holds one record with a MaxKeyLen key and its group.
	MinBatchBytes = BatchHeaderMin + MaxMeshName + GroupHeaderLen + RecordHeaderLen + MaxKeyLen
)

// ErrInvalidOption is wrapped by every OptionError.
var ErrInvalidOption = errors.New("bridge: invalid option")

// OptionError names the option New rejected.
type OptionError struct {
	Option string
	Value  any
	Reason string
}

// Error names the option, its value and what is wrong with it.
func (e *OptionError) Error() string {
	return fmt.Sprintf("bridge: invalid option %s=%v: %s", e.Option, e.Value, e.Reason)
}

// Unwrap returns ErrInvalidOption.
func (e *OptionError) Unwrap() error { return ErrInvalidOption }

func optErr(option string, value any, reason string) error {
	return &OptionError{Option: option, Value: value, Reason: reason}
}

// Options configure a Bridge. The zero value of every field selects a
// default; New validates every field and names the offending one.
type Options struct {
	// Mesh configures the bridge's node in its own mesh, as for any
	// member (port, seeds, cluster, keyring: the keyring stays local). The
	// bridge sets NodeID (a tagged id, see IsBridgeID), OnInvalidate and
	// OnEvent itself: they must be left zero, and EchoLocal false.
	Mesh engine.Options
	// Name is this mesh's name on NATS, one subject token (letters,
	// digits, '-', '_'). Default: Mesh.Cluster, or engine.DefaultCluster.
	Name string
	// NATSURL lists the NATS servers, comma-separated. Default
	// nats.DefaultURL.
	NATSURL string
	// NATSOptions are passed to nats.Connect after the bridge's own
	// (reconnect forever, no echo): TLS (nats.Secure, nats.RootCAs,
	// nats.ClientCert), NKeys (nats.NkeyOptionFromSeed), credentials
	// (nats.UserCredentials), a connection name. Connection event handlers
	// set here are replaced by the bridge's.
	NATSOptions []nats.Option
	// SubjectPrefix starts every subject: a mesh's batches go to
	// <prefix>.inv.<name>, its bridges' presence beacons to
	// <prefix>.presence.<name>. Default "warpmesh".
	SubjectPrefix string
	// Remotes names the meshes to import from. Empty: every mesh under
	// the prefix (a wildcard subscription). Required with JetStream.
	Remotes []string
	// MaxBatchBytes bounds one NATS message. Default 64 KiB; at least
	// MinBatchBytes and at most the server's max_payload.
	MaxBatchBytes int
	// ExportQueue is how many full batches may wait for NATS before the
	// mesh's receive path waits for the bridge. Default 16.
	ExportQueue int
	// KeepAlive is the idle interval after which an exporter sends an
	// empty batch, and the presence beacon interval. Default 1s.
	KeepAlive time.Duration
	// StreamTimeout is the silence after which a remote exporter is taken
	// as gone (and its mesh, when it was the last, as cut off: the bridge
	// flushes) and a sibling bridge's presence as lost. Default
	// 3 × KeepAlive; must exceed KeepAlive.
	StreamTimeout time.Duration
	// ExportWait bounds how long the mesh's receive path waits for a free
	// export buffer before dropping (and flagging the loss). Default 100ms.
	ExportWait time.Duration
	// DedupFrames is the size of one dedup generation, in mesh frames.
	// Default 65536.
	DedupFrames int
	// MaxStreams caps the remote meshes, remote streams and sibling
	// bridges tracked (a dead stream is evicted first). A valid batch that
	// finds the tables full is dropped, counted, and the mesh flushed.
	// NATS permissions, not this cap, keep strangers off the subjects.
	// Default 1024.
	MaxStreams int
	// JetStream, when set, carries batches through JetStream instead of
	// core NATS (see JetStreamOptions).
	JetStream *JetStreamOptions
	// Logger receives the bridge's logs. Default: Mesh.Logger, or
	// slog.Default().
	Logger *slog.Logger
}

// JetStreamOptions select JetStream mode: each mesh's batches go into a
// stream of their own (created when missing) with a Nats-Msg-Id per batch,
// and each mesh reads every remote stream through a durable consumer that
// its importing bridge resumes, so a reconnect, a bridge restart or a
// takeover replays what was missed instead of flushing. Every bridge
// joined through JetStream must use it (the streams hold the batches).
type JetStreamOptions struct {
	// Durable names this mesh's consumers (one per remote mesh:
	// <Durable>_<remote>), shared by the mesh's bridges: the importing
	// bridge consumes, and a restarted or newly importing bridge resumes.
	// Letters, digits, '-' and '_'. Default: Name.
	Durable string
	// MaxAge bounds how long a stream keeps batches. Default 1h. A
	// consumer that falls further behind sees a batch gap and flushes.
	MaxAge time.Duration
	// Memory keeps streams in memory instead of files.
	Memory bool
	// Replicas is the stream replica count. Default 1.
	Replicas int
	// FlushWhileCutOff makes the importer flush its mesh every
	// StreamTimeout while it is disconnected from NATS, as in core mode.
	// Without it, a value invalidated in another mesh during an outage may
	// be served until the link is back and the replay invalidates it (the
	// staleness is then bounded by the outage, not by StreamTimeout); with
	// it, the caches pass loads through during the outage instead.
	FlushWhileCutOff bool
}

// resolved is Options with defaults applied.
type resolved struct {
	Options
	invSubject, presenceSubject string // this mesh's
	subs                        []string
}

func (o Options) resolve() (*resolved, error) {
	r := &resolved{Options: o}
	if o.Mesh.NodeID != 0 {
		return nil, optErr("Mesh.NodeID", o.Mesh.NodeID, "the bridge chooses its node id; leave it zero")
	}
	if o.Mesh.OnInvalidate != nil || o.Mesh.OnEvent != nil {
		return nil, optErr("Mesh.OnInvalidate", "set", "the bridge registers its own handlers; leave OnInvalidate and OnEvent nil")
	}
	if o.Mesh.EchoLocal {
		return nil, optErr("Mesh.EchoLocal", true, "a bridge must not see its own imports")
	}
	if r.Name == "" {
		r.Name = o.Mesh.Cluster
		if r.Name == "" {
			r.Name = engine.DefaultCluster
		}
	}
	if !ValidMeshName(r.Name) {
		return nil, optErr("Name", r.Name, "want 1 to 64 letters, digits, '-' or '_'")
	}
	if r.NATSURL == "" {
		r.NATSURL = nats.DefaultURL
	}
	if r.SubjectPrefix == "" {
		r.SubjectPrefix = DefaultSubjectPrefix
	}
	for _, tok := range strings.Split(r.SubjectPrefix, ".") {
		if !ValidMeshName(tok) {
			return nil, optErr("SubjectPrefix", r.SubjectPrefix, "want dot-separated tokens of letters, digits, '-' or '_'")
		}
	}
	seen := map[string]bool{}
	for _, m := range r.Remotes {
		switch {
		case !ValidMeshName(m):
			return nil, optErr("Remotes", m, "want 1 to 64 letters, digits, '-' or '_'")
		case m == r.Name:
			return nil, optErr("Remotes", m, "is this bridge's own mesh")
		case seen[m]:
			return nil, optErr("Remotes", m, "listed twice")
		}
		seen[m] = true
	}
	if r.MaxBatchBytes == 0 {
		r.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if r.MaxBatchBytes < MinBatchBytes || r.MaxBatchBytes > 64<<20 {
		return nil, optErr("MaxBatchBytes", r.MaxBatchBytes, fmt.Sprintf("want %d..%d", MinBatchBytes, 64<<20))
	}
	if r.ExportQueue == 0 {
		r.ExportQueue = DefaultExportQueue
	}
	if r.ExportQueue < 1 || r.ExportQueue > 1<<16 {
		return nil, optErr("ExportQueue", r.ExportQueue, "want 1..65536")
	}
	if r.KeepAlive == 0 {
		r.KeepAlive = DefaultKeepAlive
	}
	if r.KeepAlive < time.Millisecond {
		return nil, optErr("KeepAlive", r.KeepAlive, "want at least 1ms")
	}
	if r.StreamTimeout == 0 {
		r.StreamTimeout = 3 * r.KeepAlive
	}
	if r.StreamTimeout <= r.KeepAlive {
		return nil, optErr("StreamTimeout", r.StreamTimeout, "must exceed KeepAlive")
	}
	if r.ExportWait == 0 {
		r.ExportWait = 100 * time.Millisecond
	}
	if r.ExportWait < 0 {
		return nil, optErr("ExportWait", r.ExportWait, "must not be negative")
	}
	if r.DedupFrames == 0 {
		r.DedupFrames = DefaultDedupFrames
	}
	if r.DedupFrames < 64 || r.DedupFrames > 1<<24 {
		return nil, optErr("DedupFrames", r.DedupFrames, "want 64..16777216")
	}
	if r.MaxStreams == 0 {
		r.MaxStreams = DefaultMaxStreams
	}
	if r.MaxStreams < 1 || r.MaxStreams > 1<<20 {
		return nil, optErr("MaxStreams", r.MaxStreams, "want 1..1048576")
	}
	if r.JetStream != nil {
		js := *r.JetStream
		r.JetStream = &js
		if js.Durable == "" {
			js.Durable = r.Name
		}
		if !ValidMeshName(js.Durable) {
			return nil, optErr("JetStream.Durable", js.Durable, "want 1 to 64 letters, digits, '-' or '_'")
		}
		if len(r.Remotes) == 0 {
			return nil, optErr("Remotes", "", "JetStream needs the remote meshes named (one durable consumer each)")
		}
		if js.MaxAge < 0 || js.Replicas < 0 || js.Replicas > 5 {
			return nil, optErr("JetStream", fmt.Sprintf("MaxAge=%v Replicas=%d", js.MaxAge, js.Replicas), "MaxAge must not be negative, Replicas 0..5")
		}
	}
	if r.Logger == nil {
		r.Logger = o.Mesh.Logger
		if r.Logger == nil {
			r.Logger = slog.Default()
		}
	}
	r.invSubject = r.invSubjectOf(r.Name)
	r.presenceSubject = r.SubjectPrefix + ".presence." + r.Name
	if len(r.Remotes) == 0 {
		r.subs = []string{r.SubjectPrefix + ".inv.*"}
	} else {
		for _, m := range r.Remotes {
			r.subs = append(r.subs, r.invSubjectOf(m))
		}
	}
	return r, nil
}

func (r *resolved) invSubjectOf(mesh string) string { return r.SubjectPrefix + ".inv." + mesh }

// meshOfSubject returns the mesh token of a batch subject, or false.
func (r *resolved) meshOfSubject(subject string) (string, bool) {
	p := r.SubjectPrefix + ".inv."
	if len(subject) <= len(p) || subject[:len(p)] != p {
		return "", false
	}
	m := subject[len(p):]
	return m, ValidMeshName(m)
}
