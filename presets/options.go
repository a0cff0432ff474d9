package presets

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warpmesh/warpmesh/codec"
)

// Defaults for options not given.
const (
	// DefaultMaxEntries bounds a cache built without WithMaxEntries.
	DefaultMaxEntries = 100_000
	// NamespaceSeparator joins a namespace and a key on the wire:
	// namespace "users" and key "42" travel as "users:42".
	NamespaceSeparator = ':'
	// MaxNamespaceLen is the longest namespace WithNamespace accepts.
	MaxNamespaceLen = 255
)

// ErrInvalidOption is wrapped by every cache option error.
var ErrInvalidOption = errors.New("presets: invalid option")

// OptionError names the cache option that failed validation.
type OptionError struct {
	Option string // the option's constructor, e.g. "WithTTL"
	Value  any
	Reason string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("presets: invalid option %s(%v): %s", e.Option, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidOption) hold.
func (e *OptionError) Unwrap() error { return ErrInvalidOption }

// Clock tells a cache the time, for expiry. The default is the system
// clock; tests supply one they advance by hand. Now must be safe for
// concurrent use and should not allocate (it is called on Get hits of
// entries that have a TTL).
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Option configures a cache. Build one with WithTTL, WithMaxEntries,
// WithClock, WithNamespace or WithServeWhileSilent; the zero Option is
// rejected.
type Option struct {
	name  string
	apply func(*config) error
}

// config is the cache options resolved and validated.
type config struct {
	ttl           time.Duration
	maxEntries    int
	clock         Clock
	namespace     string
	ignoreSilence bool
}

// WithTTL sets the default time to live of entries stored by Set and
// GetOrLoad. Zero (the default) means entries never expire; they leave only
// by invalidation, eviction or flush. A negative TTL is an error.
func WithTTL(d time.Duration) Option {
	return Option{"WithTTL", func(c *config) error {
		if d < 0 {
			return &OptionError{"WithTTL", d, "must not be negative"}
		}
		c.ttl = d
		return nil
	}}
}

// WithMaxEntries bounds the number of entries the cache holds (default
// DefaultMaxEntries). When a shard is full, storing a new key evicts one
// chosen by the W-TinyLFU policy (see Cache). n must be at least 1.
func WithMaxEntries(n int) Option {
	return Option{"WithMaxEntries", func(c *config) error {
		if n < 1 {
			return &OptionError{"WithMaxEntries", n, "must be at least 1"}
		}
		c.maxEntries = n
		return nil
	}}
}

// WithClock replaces the system clock used for expiry, for tests.
func WithClock(clk Clock) Option {
	return Option{"WithClock", func(c *config) error {
		if clk == nil {
			return &OptionError{"WithClock", clk, "must not be nil"}
		}
		c.clock = clk
		return nil
	}}
}

// WithNamespace prefixes the cache's keys on the wire with ns and
// NamespaceSeparator, so several caches can share one node without their
// invalidations touching each other. Without a namespace (or with ""),
// cache keys are mesh keys as they are: node.Invalidate("user:1") from any
// member drops "user:1". ns must not contain NamespaceSeparator and is at
// most MaxNamespaceLen bytes.
func WithNamespace(ns string) Option {
	return Option{"WithNamespace", func(c *config) error {
		switch {
		case strings.IndexByte(ns, NamespaceSeparator) >= 0:
			return &OptionError{"WithNamespace", ns, fmt.Sprintf("must not contain %q", NamespaceSeparator)}
		case len(ns) > MaxNamespaceLen:
			return &OptionError{"WithNamespace", ns, fmt.Sprintf("longer than %d bytes", MaxNamespaceLen)}
		case len(ns)+2 > codec.MaxKeyLen:
			return &OptionError{"WithNamespace", ns, "leaves no room for keys"}
		}
		c.namespace = ns
		return nil
	}}
}

// WithServeWhileSilent(true) makes the cache serve what it holds even
// while a member has not been heard for SuspectAfter (engine.Node.Silent),
// instead of passing reads through to the loader (the default, false).
// It trades the staleness bound for load on the source of truth: with it
// the bound holds against lost packets (Gaps) but not against a member's
// crash, a partition or a stalled process — a cache may then serve a value
// an unheard member has already invalidated, for as long as that member
// stays silent (until DeadAfter + RepairTimeout). Without it, every
// member's crash passes every instance's reads through for about
// DeadAfter + RepairTimeout − SuspectAfter (Stats.SilentLoads).
func WithServeWhileSilent(serve bool) Option {
	return Option{"WithServeWhileSilent", func(c *config) error {
		c.ignoreSilence = serve
		return nil
	}}
}

func resolve(opts []Option) (*config, error) {
	c := &config{maxEntries: DefaultMaxEntries, clock: systemClock{}}
	for i, o := range opts {
		if o.apply == nil {
			return nil, &OptionError{"Option", i, "zero Option (use WithTTL, WithMaxEntries, WithClock or WithNamespace)"}
		}
		if err := o.apply(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}
