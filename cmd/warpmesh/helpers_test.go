package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the warpmesh executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warpmesh-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "warpmesh")
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	out, err := exec.Command(goTool, "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building warpmesh: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child is a warpmesh process whose stdout lines the test reads.
type child struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
	done   chan struct{}
}

// startChild starts warpmesh with args; t.Cleanup kills it.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with env added to the environment.
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	if env != nil {
		c.cmd.Env = append(os.Environ(), env...)
	}
	c.cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		c.cmd.Wait()
	})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
	}()
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitLine waits for a stdout line that starts with prefix and returns it.
func (c *child) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if strings.HasPrefix(l, prefix) {
				c.mu.Unlock()
				return l
			}
		}
		all, errs := strings.Join(c.lines, "\n"), c.stderr.String()
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no line starting with %q within 10s; stdout:\n%s\nstderr:\n%s", prefix, all, errs)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// invLine is a parsed --print inv line.
type invLine struct {
	origin string
	fields map[string]string // name=value fields, e.g. seq
	kind   string            // exact or prefix
	key    string
}

// parseInvLine reads an inv line as package doc says a script should: the
// name=value fields by name, then exact|prefix, then the quoted key as the
// rest of the line.
func parseInvLine(line string) (invLine, bool) {
	rest, ok := strings.CutPrefix(line, "inv ")
	if !ok {
		return invLine{}, false
	}
	inv := invLine{fields: map[string]string{}}
	inv.origin, rest, _ = strings.Cut(rest, " ")
	for {
		var word string
		word, rest, ok = strings.Cut(rest, " ")
		if !ok {
			return inv, false
		}
		if name, value, isField := strings.Cut(word, "="); isField {
			inv.fields[name] = value
			continue
		}
		if word != "exact" && word != "prefix" {
			return inv, false
		}
		key, err := strconv.Unquote(rest)
		if err != nil {
			return inv, false
		}
		inv.kind, inv.key = word, key
		return inv, true
	}
}

// waitInv waits for an inv line from origin of kind with key and returns it
// parsed; it checks that the line carries a positive seq.
func (c *child) waitInv(t *testing.T, origin, kind, key string) invLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		for _, l := range c.lines {
			if inv, ok := parseInvLine(l); ok && inv.origin == origin && inv.kind == kind && inv.key == key {
				c.mu.Unlock()
				if seq, err := strconv.ParseUint(inv.fields["seq"], 10, 64); err != nil || seq == 0 {
					t.Errorf("inv line %q: seq %q is not a positive integer", l, inv.fields["seq"])
				}
				return inv
			}
		}
		all, errs := strings.Join(c.lines, "\n"), c.stderr.String()
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no inv %s %s %q line within 10s; stdout:\n%s\nstderr:\n%s", origin, kind, key, all, errs)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (c *child) stop(t *testing.T) error {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
	return c.cmd.Wait()
}

// field returns the i-th space-separated field of line.
func field(line string, i int) string {
	f := strings.Fields(line)
	if i < len(f) {
		return f[i]
	}
	return ""
}

// loopbackNode returns the flags of a test node: loopback, unicast only,
// a free port, quick heartbeats, a cluster of the test's own.
func loopbackNode(cluster string, extra ...string) []string {
	return append([]string{"node", "--port", "0", "--bind", "127.0.0.1", "--unicast-only",
		"--cluster", cluster, "--heartbeat", "50ms", "--recv-buffer", "262144", "--send-buffer", "262144",
		"--log-level", "warn"}, extra...)
}
