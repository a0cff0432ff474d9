package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNodeIPv6FromEnvironment runs two nodes configured only through
// WARPMESH_* variables, as a container is: IPv6 loopback, the keyring read
// from a file laid out as a mounted Secret (a directory with one key per
// file), the admin endpoint on [::1]. Addresses print in [ip]:port form;
// SIGTERM leaves gracefully within --shutdown-grace.
func TestNodeIPv6FromEnvironment(t *testing.T) {
	if c, err := exec.Command(binary, "invalidate", "--bind", "::1", "--peers", "[::1]:9", "--unicast-only",
		"--wait", "1ms", "x").CombinedOutput(); strings.Contains(string(c), "assign requested address") {
		t.Skipf("no IPv6 loopback here: %v: %s", err, c)
	}
	secret := filepath.Join(t.TempDir(), "warpmesh-keyring") // a Secret volume: one file per key of the Secret
	if err := os.MkdirAll(secret, 0o755); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(secret, "keyring")
	if err := os.WriteFile(keyFile, []byte("# primary first\n"+strings.Repeat("cd", keySize)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WARPMESH_BIND=::1", "WARPMESH_PORT=0", "WARPMESH_UNICAST_ONLY=true",
		"WARPMESH_CLUSTER=v6-" + strconv.Itoa(os.Getpid()), "WARPMESH_KEY_FILE=" + keyFile,
		"WARPMESH_HEARTBEAT=50ms", "WARPMESH_RECV_BUFFER=262144", "WARPMESH_SEND_BUFFER=262144",
		"WARPMESH_HTTP=[::1]:0", "WARPMESH_PRINT=true", "WARPMESH_LOG_LEVEL=warn", "WARPMESH_SHUTDOWN_GRACE=5s",
	}
	a := startChildEnv(t, env, "node")
	self := a.waitLine(t, "self ")
	seed := field(self, 2)
	if !strings.HasPrefix(seed, "[::1]:") {
		t.Fatalf("self line %q: want an [::1]:port address", self)
	}
	httpAddr := field(a.waitLine(t, "http "), 1)
	if !strings.HasPrefix(httpAddr, "[::1]:") {
		t.Fatalf("http address %q: want [::1]:port", httpAddr)
	}
	b := startChildEnv(t, append(env, "WARPMESH_PEERS="+seed, "WARPMESH_HTTP="), "node")
	bSelf := b.waitLine(t, "self ")
	join := a.waitLine(t, "event join ")
	if !strings.HasPrefix(field(join, 3), "[::1]:") {
		t.Fatalf("join line %q: want an [::1]:port address", join)
	}
	out, err := exec.Command(binary, "members", "--http", httpAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), field(bSelf, 2)) {
		t.Fatalf("members --http %s: %v\n%s", httpAddr, err, out)
	}
	start := time.Now()
	if err := b.stop(t); err != nil {
		t.Fatalf("node b after SIGTERM: %v\n%s", err, b.stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SIGTERM to exit took %v, beyond --shutdown-grace=5s", d)
	}
	a.waitLine(t, "event leave "+field(bSelf, 1))
}
