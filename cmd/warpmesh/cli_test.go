package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestDemoShort(t *testing.T) {
	var out, errs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	// A small window keeps receiver queues short: under -race on a loaded
	// machine a long queue delays frames past the engine's repair deadline
	// (reported to the engine owner), which the demo rightly counts as a miss.
	code := run(ctx, []string{"demo", "--nodes", "3", "--count", "20000", "--window", "512", "--heartbeat", "30ms", "--rejoin-count", "200"}, &out, &errs)
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	s := out.String()
	for _, want := range []string{"== discovery", "== burst", "suspected by 2/2", "declared dead by 2/2", "rejoined", "== summary", "OK: every live node"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\r") {
		t.Error("progress redrawn in place although stdout is not a terminal")
	}
}

func TestNodeInvalidateAcrossProcesses(t *testing.T) {
	cluster := "it-" + strconv.Itoa(os.Getpid())
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", keySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startChild(t, loopbackNode(cluster, "--print", "--key-file", keyFile)...)
	self := a.waitLine(t, "self ")
	seed := field(self, 2)
	b := startChild(t, loopbackNode(cluster, "--print", "--key-file", keyFile, "--peers", seed)...)
	b.waitLine(t, "self ")
	a.waitLine(t, "event join ")
	b.waitLine(t, "event join ")
	for _, c := range []*child{a, b} {
		c.mu.Lock()
		if !strings.HasPrefix(c.lines[0], "self ") {
			t.Errorf("first --print line %q is not self", c.lines[0])
		}
		c.mu.Unlock()
	}

	// Without the key, the mesh does not answer.
	out, err := exec.Command(binary, "invalidate", "--bind", "127.0.0.1", "--peers", seed, "--cluster", cluster,
		"--wait", "300ms", "intruder").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure || !strings.Contains(string(out), "no member reachable") {
		t.Fatalf("invalidate without the key: %v\n%s", err, out)
	}

	cmd := exec.Command(binary, "invalidate", "--bind", "127.0.0.1", "--peers", seed, "--cluster", cluster, "--key-file", keyFile,
		"--min-members", "2", "--linger", "0", "--prefix", "team:7:", "user:42", `we"ird key`)
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("invalidate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "to 2 member(s)") {
		t.Errorf("invalidate output %q", out)
	}
	for _, c := range []*child{a, b} {
		exact := c.waitLine(t, `inv `)
		origin := field(exact, 1)
		if len(origin) != 16 {
			t.Errorf("origin %q is not 16 hex digits", origin)
		}
		first := c.waitInv(t, origin, "exact", "user:42")
		second := c.waitInv(t, origin, "exact", `we"ird key`)
		c.waitInv(t, origin, "prefix", "team:7:")
		// One publisher's keys, published together, travel in its frames in
		// order: the second never rides an earlier frame than the first.
		s1, _ := strconv.ParseUint(first.fields["seq"], 10, 64) // waitInv checked both parse
		s2, _ := strconv.ParseUint(second.fields["seq"], 10, 64)
		if s2 < s1 {
			t.Errorf("seq of the second key %d is below the first's %d", s2, s1)
		}
		if c == a {
			// The seed heard the one-shot node directly, so it sees it leave;
			// b may not have learned of it at all before it left.
			c.waitLine(t, "event leave "+origin+" ")
		}
		c.mu.Lock()
		for _, l := range c.lines {
			if strings.Contains(l, "intruder") {
				t.Errorf("unauthenticated invalidation applied: %s", l)
			}
		}
		c.mu.Unlock()
	}
	if err := b.stop(t); err != nil {
		t.Errorf("node b after SIGTERM: %v", err)
	}
	a.waitLine(t, "event leave "+field(b.waitLine(t, "self "), 1))
}

func TestInvalidateNoMember(t *testing.T) {
	p, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "invalidate", "--bind", "127.0.0.1", "--peers", fmt.Sprintf("127.0.0.1:%d", p),
		"--cluster", "nobody", "--wait", "300ms", "k")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("want exit %d, got %v\n%s", exitFailure, err, out)
	}
	if !strings.Contains(string(out), "no member reachable") {
		t.Errorf("message %q", out)
	}
}

func TestAdminEndpoints(t *testing.T) {
	cluster := "admin-" + strconv.Itoa(os.Getpid())
	a := startChild(t, loopbackNode(cluster, "--print", "--http", "127.0.0.1:0")...)
	self := a.waitLine(t, "self ")
	base := "http://" + field(a.waitLine(t, "http "), 1)
	b := startChild(t, loopbackNode(cluster, "--print", "--peers", field(self, 2))...)
	a.waitLine(t, "event join ")

	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		dec := json.NewDecoder(resp.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var health struct {
		Status       string `json:"status"`
		ID           string `json:"id"`
		MembersAlive int    `json:"members_alive"`
	}
	getJSON("/healthz", &health)
	if health.Status != "ok" || health.ID != field(self, 1) || health.MembersAlive != 1 {
		t.Errorf("healthz %+v", health)
	}
	var ready struct {
		Ready bool   `json:"ready"`
		ID    string `json:"id"`
	}
	a.waitLine(t, "event ready")
	getJSON("/readyz", &ready)
	if !ready.Ready || ready.ID != field(self, 1) {
		t.Errorf("readyz %+v", ready)
	}
	var members membersDoc
	getJSON("/members", &members)
	bid := field(b.waitLine(t, "self "), 1)
	if members.Self.ID != field(self, 1) || members.Cluster != cluster || len(members.Members) != 1 ||
		members.Members[0].ID != bid || members.Members[0].State != "alive" || members.Members[0].LastHeard.IsZero() {
		t.Errorf("members %+v", members)
	}

	resp, err := http.Post(base+"/invalidate", "application/json", strings.NewReader(`{"keys":["a","b"],"prefixes":["p:"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var counts invalidateResponse
	json.NewDecoder(resp.Body).Decode(&counts)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || counts != (invalidateResponse{Keys: 2, Prefixes: 1}) {
		t.Fatalf("POST /invalidate: %s %+v", resp.Status, counts)
	}
	b.waitInv(t, field(self, 1), "prefix", "p:")
	for _, bad := range []string{`{"keys":[""]}`, `{}`, `not json`, `{"keyz":["a"]}`} {
		resp, err := http.Post(base+"/invalidate", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Error == "" {
			t.Errorf("POST %s: %s %q", bad, resp.Status, e.Error)
		}
	}

	var stats statsDoc
	getJSON("/stats", &stats)
	if stats.Published != 3 || stats.Members["alive"] != 1 || stats.HeartbeatsReceived == 0 || len(stats.Drops) == 0 ||
		len(stats.GapsGivenUp) == 0 || stats.RepairMax == "" {
		t.Errorf("stats %+v", stats)
	}

	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	if v := fams["warpmesh_published_total"].GetMetric()[0].GetCounter().GetValue(); v != 3 {
		t.Errorf("warpmesh_published_total = %v, want 3", v)
	}
	alive := -1.0
	for _, m := range fams["warpmesh_members"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "alive" {
			alive = m.GetGauge().GetValue()
		}
	}
	if alive != 1 {
		t.Errorf(`warpmesh_members{state="alive"} = %v, want 1`, alive)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	var table, errs bytes.Buffer
	if code := run(context.Background(), []string{"members", "--http", strings.TrimPrefix(base, "http://")}, &table, &errs); code != exitOK {
		t.Fatalf("members exit %d: %s", code, errs.String())
	}
	if !strings.Contains(table.String(), bid) || !strings.Contains(table.String(), "(this node)") || !strings.HasPrefix(table.String(), "ID ") {
		t.Errorf("members table:\n%s", table.String())
	}
}

func TestBadFlags(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keyFile, []byte("not a key\n"), 0o600)
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"node", "--bogus"}, nil, "flag provided but not defined: -bogus"},
		{[]string{"node", "--port", "70000"}, nil, "--port=70000"},
		{[]string{"node", "--fanout", "100", "--unicast-only", "--bind", "127.0.0.1", "--port", "0"}, nil, "--fanout=100"},
		{[]string{"node", "--fanout", "-1"}, nil, "--fanout=-1"},
		{[]string{"node", "--heartbeat", "soon"}, nil, "-heartbeat"},
		{[]string{"node", "--node-id", "xyz"}, nil, "--node-id"},
		{[]string{"node", "--key-file", keyFile}, nil, "--key-file"},
		{[]string{"node", "--log-format", "xml"}, nil, "--log-format"},
		{[]string{"node", "--auth", "send-plaintext"}, nil, "--auth=send-plaintext needs --key-file"},
		{[]string{"node", "--bind", "nowhere"}, nil, "--bind"},
		{[]string{"node", "--retransmit-buffer", "-1"}, nil, "--retransmit-buffer=-1"},
		{[]string{"node", "--retransmit-rate", "-5"}, nil, "--retransmit-rate=-5"},
		{[]string{"node", "--repair-timeout", "-1s"}, nil, "--repair-timeout=-1s"},
		{[]string{"node", "--unicast-only", "--bind", "127.0.0.1", "--port", "0", "--retransmit-buffer", "100"}, nil, "--retransmit-buffer=100"},
		{[]string{"node", "--unicast-only", "--bind", "127.0.0.1", "--port", "0", "--repair-timeout", "5ms"}, nil, "--repair-timeout=5ms"},
		{[]string{"node", "--unicast-only", "--bind", "127.0.0.1", "--port", "0"}, map[string]string{"WARPMESH_REPAIR_TIMEOUT": "1ms"}, "--repair-timeout=1ms"},
		{[]string{"node"}, map[string]string{"WARPMESH_GSO": "maybe"}, "WARPMESH_GSO"},
		{[]string{"node", "extra"}, nil, "unexpected argument"},
		{[]string{"node", "--unicast-only", "--bind", "127.0.0.1", "--port", "0"}, map[string]string{"WARPMESH_FANOUT": "100"}, "--fanout=100"},
		{[]string{"node"}, map[string]string{"WARPMESH_PORT": "abc"}, "WARPMESH_PORT"},
		{[]string{"invalidate", "--peers", "127.0.0.1:1"}, nil, "nothing to invalidate"},
		{[]string{"members"}, nil, "--http is required"},
		{[]string{"demo", "--nodes", "1"}, nil, "--nodes=1"},
		{[]string{"nosuchcommand"}, nil, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errs bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errs); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errs.String())
			}
			if !strings.Contains(errs.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", errs.String(), tc.want)
			}
		})
	}
}

// A flag on the command line wins over its environment variable.
func TestFlagWinsOverEnv(t *testing.T) {
	t.Setenv("WARPMESH_FANOUT", "100")
	var errs bytes.Buffer
	fs := newFlagSet("node", "node", &errs)
	var nf nodeFlags
	nf.register(fs, 7946)
	if err := parseFlags(fs, []string{"--fanout", "5"}); err != nil {
		t.Fatal(err)
	}
	if nf.fanout != 5 {
		t.Errorf("fanout %d, want 5 from the flag", nf.fanout)
	}
	t.Setenv("WARPMESH_GROUP_PORT", "9999")
	fs = newFlagSet("node", "node", &errs)
	nf = nodeFlags{}
	nf.register(fs, 7946)
	if err := parseFlags(fs, nil); err != nil || nf.groupPort != 9999 {
		t.Errorf("group-port %d (%v), want 9999 from WARPMESH_GROUP_PORT", nf.groupPort, err)
	}
}

// The repair and GSO flags, and their environment twins, reach engine.Options;
// 0 leaves the engine's defaults.
func TestRepairFlagsToOptions(t *testing.T) {
	t.Setenv("WARPMESH_RETRANSMIT_RATE", "500")
	t.Setenv("WARPMESH_GSO", "true")
	var errs bytes.Buffer
	fs := newFlagSet("node", "node", &errs)
	var nf nodeFlags
	nf.register(fs, 7946)
	if err := parseFlags(fs, []string{"--retransmit-buffer", "65536", "--repair-timeout", "250ms"}); err != nil {
		t.Fatal(err)
	}
	o, err := nf.options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.RetransmitBuffer != 65536 || o.RetransmitRate != 500 || o.RepairTimeout != 250*time.Millisecond || o.DisableGSO {
		t.Errorf("options: buffer %d rate %d timeout %v no-gso %v", o.RetransmitBuffer, o.RetransmitRate, o.RepairTimeout, o.DisableGSO)
	}
	fs = newFlagSet("node", "node", &errs)
	nf = nodeFlags{}
	nf.register(fs, 7946)
	os.Unsetenv("WARPMESH_RETRANSMIT_RATE")
	os.Unsetenv("WARPMESH_GSO")
	if err := parseFlags(fs, nil); err != nil {
		t.Fatal(err)
	}
	if o, err = nf.options(nil); err != nil || o.RetransmitBuffer != 0 || o.RetransmitRate != 0 || o.RepairTimeout != 0 || o.DisableGSO {
		t.Errorf("defaults: %v buffer %d rate %d timeout %v no-gso %v", err, o.RetransmitBuffer, o.RetransmitRate, o.RepairTimeout, o.DisableGSO)
	}
}

// The real process exits with status 2 and says why; -h exits 0 and lists
// every flag with its default.
func TestBinaryExitStatus(t *testing.T) {
	out, err := exec.Command(binary, "node", "--frame-size", "10", "--unicast-only", "--bind", "127.0.0.1", "--port", "0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "--frame-size=10") {
		t.Errorf("bad flag: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "node", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, name := range []string{"-port", "-bind", "-group", "-interface", "-peers", "-advertise", "-heartbeat", "-cluster",
		"-key-file", "-unicast-only", "-frame-size", "-fanout", "-http", "-print", "(default 7946)", "WARPMESH_",
		"-gso", "-retransmit-buffer", "-retransmit-rate", "-repair-timeout"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("-h lacks %q", name)
		}
	}
}
