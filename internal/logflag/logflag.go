// Package logflag is the --log-format and --log-level pair that the
// warpmesh and warpmesh-bridge commands share: it registers both flags and
// turns them into a slog.Logger on stderr.
package logflag

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Flags holds the two flags' values.
type Flags struct{ Format, Level string }

// Register adds --log-format (text or json, default text) and --log-level
// (debug, info, warn or error, default info) to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Format, "log-format", "text", "log `format` on stderr: text or json")
	fs.StringVar(&f.Level, "log-level", "info", "log `level`: debug, info, warn or error")
}

// Logger returns the logger the flags select, writing to stderr, or an
// error naming the flag and its value; the commands report it as a usage
// error.
func (f *Flags) Logger(stderr io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level=%q: want debug, info, warn or error", f.Level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch f.Format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, ho)), nil
	}
	return nil, fmt.Errorf("invalid --log-format=%q: want text or json", f.Format)
}
